import assert from "node:assert/strict";
import {
  ALLOWED_NETLINK_PROTOCOLS,
  ALLOWED_SOCKET_FAMILIES,
  buildSeccompFilter,
  buildSeccompProgram,
  decodeBpf,
  encodeBpf,
  ENOSYS,
  EPERM,
  evaluateSeccomp,
  REFUSED_SYSCALLS,
  SECCOMP_AUDIT_ARCH,
  type SeccompArch,
  SYSCALL_NUMBERS,
} from "./seccomp.ts";
import type { SandboxPlan } from "./plan.ts";

const ARCHES: readonly SeccompArch[] = ["x86_64", "aarch64"];
const GOLDEN = (arch: SeccompArch) => new URL(`../testdata/seccomp/${arch}.bpf`, import.meta.url);

const PLAN: SandboxPlan = {
  argv: ["true"],
  cwd: "/work",
  env: {},
  network: { kind: "none" },
  unixSockets: { kind: "allowlist", paths: [] },
  writable: [],
  denyRead: [],
  extraBinds: [],
  runDir: "/tmp/sandbox-run-XXXXXX",
};
const PROXY_PLAN: SandboxPlan = {
  ...PLAN,
  network: { kind: "proxy", httpPort: 3128, socksPort: 1080, proxySocket: "/tmp/p.sock" },
};

const ALLOW = { kind: "allow" } as const;
const DENY = { kind: "errno", errno: EPERM } as const;

// Calls the filter must let through untouched (x86-64 / aarch64 numbers).
const HARMLESS: Readonly<Record<SeccompArch, Readonly<Record<string, number>>>> = {
  x86_64: { read: 0, write: 1, openat: 257, execve: 59, getpid: 39, exit_group: 231 },
  aarch64: { read: 63, write: 64, openat: 56, execve: 221, getpid: 172, exit_group: 94 },
};

for (const arch of ARCHES) {
  const program = buildSeccompProgram(arch);
  const native = SECCOMP_AUDIT_ARCH[arch];
  const nr = SYSCALL_NUMBERS[arch];
  const run = (call: number, args: number[] = []) =>
    evaluateSeccomp(program, { arch: native, nr: call, args });

  Deno.test(`buildSeccompFilter() for ${arch} matches the golden bytes`, async () => {
    const golden = await Deno.readFile(GOLDEN(arch));
    assert.deepEqual(buildSeccompFilter(PLAN, arch), golden);
    // Both postures get the same filter today.
    assert.deepEqual(buildSeccompFilter(PROXY_PLAN, arch), golden);
    assert.deepEqual(decodeBpf(golden), program);
    assert.deepEqual(encodeBpf(decodeBpf(golden)), golden);
  });

  Deno.test(`seccomp (${arch}) refuses every call of a foreign architecture with EPERM`, () => {
    const foreign = arch === "x86_64" ? 0x40000003 /* i386 */ : 0x40000028; /* arm */
    for (const call of [0, 1, 3, 4, 20, 39, 172, 231]) {
      assert.deepEqual(evaluateSeccomp(program, { arch: foreign, nr: call }), DENY);
    }
    const other = arch === "x86_64" ? SECCOMP_AUDIT_ARCH.aarch64 : SECCOMP_AUDIT_ARCH.x86_64;
    assert.deepEqual(evaluateSeccomp(program, { arch: other, nr: 0 }), DENY);
  });

  Deno.test(`seccomp (${arch}) lets ordinary calls through`, () => {
    for (const [name, call] of Object.entries(HARMLESS[arch])) {
      assert.deepEqual(run(call), ALLOW, name);
    }
  });

  Deno.test(`seccomp (${arch}) refuses io_uring, keyrings, bpf, perf, userfaultfd and mounts with EPERM`, () => {
    for (const name of REFUSED_SYSCALLS) assert.deepEqual(run(nr[name]), DENY, name);
    for (
      const name of [
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "mount",
        "umount2",
        "pivot_root",
        "open_tree",
        "open_tree_attr",
        "move_mount",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "mount_setattr",
        "setns",
      ] as const
    ) {
      assert.ok(REFUSED_SYSCALLS.includes(name), `${name} is refused`);
    }
  });

  Deno.test(`seccomp (${arch}) answers clone3 with ENOSYS so that libc falls back to clone`, () => {
    assert.deepEqual(run(nr.clone3), { kind: "errno", errno: ENOSYS });
  });

  Deno.test(`seccomp (${arch}) refuses clone and unshare with a namespace flag`, () => {
    const SIGCHLD = 17;
    const fork = 0x01200000 | SIGCHLD; // CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD
    const thread = 0x003d0f00; // glibc's pthread_create flags
    for (const call of [nr.clone, nr.unshare]) {
      for (const flag of [0x80, 0x20000, 0x02000000, 0x04000000, 0x08000000, 0x10000000]) {
        assert.deepEqual(run(call, [flag | SIGCHLD]), DENY, `flag 0x${flag.toString(16)}`);
      }
      assert.deepEqual(run(call, [0x20000000]), DENY);
      assert.deepEqual(run(call, [0x40000000]), DENY);
    }
    assert.deepEqual(run(nr.clone, [fork]), ALLOW);
    assert.deepEqual(run(nr.clone, [thread]), ALLOW);
    assert.deepEqual(run(nr.unshare, [0x400 /* CLONE_FILES */]), ALLOW);
    assert.deepEqual(run(nr.unshare, [0x200 /* CLONE_FS */]), ALLOW);
  });

  Deno.test(`seccomp (${arch}) lets only unix, inet, inet6 and route/diag netlink sockets be made`, () => {
    for (const call of [nr.socket, nr.socketpair]) {
      for (let family = 0; family < 64; family++) {
        // Protocol 0: NETLINK_ROUTE for AF_NETLINK, the default for the others.
        const expected = ALLOWED_SOCKET_FAMILIES.includes(family) ? ALLOW : DENY;
        assert.deepEqual(run(call, [family, 1, 0]), expected, `family ${family}`);
      }
      assert.deepEqual(run(call, [40, /* AF_VSOCK */ 1, 0]), DENY);
      for (let protocol = 0; protocol < 32; protocol++) {
        const expected = ALLOWED_NETLINK_PROTOCOLS.includes(protocol) ? ALLOW : DENY;
        assert.deepEqual(run(call, [16, 3, protocol]), expected, `netlink protocol ${protocol}`);
      }
    }
    // The socket type's flags do not matter: SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK.
    assert.deepEqual(run(nr.socket, [2, 0x80801, 0]), ALLOW);
    assert.deepEqual(run(nr.socket, [40, 0x80801, 0]), DENY);
  });
}

Deno.test("seccomp (x86_64) refuses the x32 ABI (syscall bit 0x40000000) with EPERM", () => {
  const program = buildSeccompProgram("x86_64");
  const arch = SECCOMP_AUDIT_ARCH.x86_64;
  for (const call of [0, 1, 39, 41, 56, 231, 512, 545]) {
    assert.deepEqual(evaluateSeccomp(program, { arch, nr: 0x40000000 | call }), DENY);
  }
});

Deno.test("seccomp syscall numbers match this machine's kernel headers", async (t) => {
  const tables: [SeccompArch, string, RegExp][] = [
    ["x86_64", "/usr/include/x86_64-linux-gnu/asm/unistd_64.h", /^#define __NR_(\w+) (\d+)$/],
    ["aarch64", "/usr/include/asm-generic/unistd.h", /^#define __NR(?:3264)?_(\w+) (\d+)$/],
  ];
  let checked = 0;
  for (const [arch, path, pattern] of tables) {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch {
      console.log(`(${path} is not on this machine: ${arch} numbers not cross-checked)`);
      continue;
    }
    await t.step(`${arch} against ${path}`, () => {
      const header = new Map<string, number>();
      for (const line of text.split("\n")) {
        const m = pattern.exec(line.trim());
        if (m !== null) header.set(m[1], Number(m[2]));
      }
      for (const [name, number] of Object.entries(SYSCALL_NUMBERS[arch])) {
        // Calls newer than the installed headers are checked against the kernel's table by hand.
        if (!header.has(name)) continue;
        assert.equal(number, header.get(name), `${arch} ${name}`);
        checked++;
      }
    });
  }
  if (Deno.build.os === "linux" && Deno.build.arch === "x86_64") assert.ok(checked > 20);
});

Deno.test("evaluateSeccomp() refuses to guess: unknown opcodes and falling off the end throw", () => {
  assert.throws(() => evaluateSeccomp([{ code: 0x07, jt: 0, jf: 0, k: 0 }], { arch: 0, nr: 0 }));
  assert.throws(() => evaluateSeccomp([{ code: 0x20, jt: 0, jf: 0, k: 0 }], { arch: 0, nr: 0 }));
});

for (const arch of ARCHES) {
  Deno.test(`seccomp (${arch}) with strict_unix_sockets refuses unix sockets but stream socketpairs`, async () => {
    const program = buildSeccompProgram(arch, { strictUnixSockets: true });
    const strictPlan: SandboxPlan = {
      ...PLAN,
      linux: {
        unshareUser: true,
        emptyDirs: [],
        hiddenDirs: [],
        maskedFiles: [],
        socketBinds: [],
        strictUnixSockets: true,
      },
    };
    const golden = await Deno.readFile(
      new URL(`../testdata/seccomp/${arch}-strict-unix.bpf`, import.meta.url),
    );
    assert.deepEqual(buildSeccompFilter(strictPlan, arch), golden);
    assert.deepEqual(decodeBpf(golden), program);
    const nr = SYSCALL_NUMBERS[arch];
    const run = (call: number, args: number[]) =>
      evaluateSeccomp(program, { arch: SECCOMP_AUDIT_ARCH[arch], nr: call, args });
    const CLOEXEC_NONBLOCK = 0x80800;
    for (const type of [1, 2, 5]) {
      assert.deepEqual(
        run(nr.socket, [1, type | CLOEXEC_NONBLOCK, 0]),
        DENY,
        `socket type ${type}`,
      );
    }
    assert.deepEqual(run(nr.socketpair, [1, 1, 0]), ALLOW);
    assert.deepEqual(run(nr.socketpair, [1, 1 | CLOEXEC_NONBLOCK, 0]), ALLOW);
    assert.deepEqual(run(nr.socketpair, [1, 5 | CLOEXEC_NONBLOCK, 0]), ALLOW);
    assert.deepEqual(run(nr.socketpair, [1, 2, 0]), DENY, "datagram pair");
    assert.deepEqual(run(nr.socketpair, [1, 2 | CLOEXEC_NONBLOCK, 0]), DENY);
    assert.deepEqual(run(nr.socketpair, [40, 1, 0]), DENY);
    // Everything else as without the switch.
    assert.deepEqual(run(nr.socket, [2, 1, 0]), ALLOW);
    assert.deepEqual(run(nr.socket, [10, 2, 0]), ALLOW);
    assert.deepEqual(run(nr.socket, [16, 3, 0]), ALLOW);
    assert.deepEqual(run(nr.socket, [40, 1, 0]), DENY);
    assert.deepEqual(run(nr.io_uring_setup, []), DENY);
  });
}
