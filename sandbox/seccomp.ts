/**
 * `buildSeccompFilter(plan, arch)`: the classic-BPF seccomp program that
 * bwrap loads (`--seccomp FD`) just before it runs the command. Pure: the
 * same plan and architecture always give the same bytes, and the tests pin
 * them (`testdata/seccomp/*.bpf`).
 *
 * The network namespace already cuts the command off from the host's
 * network; this filter closes what a network namespace does not confine
 * and what the sandbox has no use for. Every refused call fails with an
 * error (never a kill), so that tools take their fallback path:
 *
 * - a foreign architecture (i386 on x86-64, arm32 on aarch64) and, on
 *   x86-64, the x32 ABI: their syscall numbers differ, so a rule keyed on
 *   the native numbers would not see them: every call is refused;
 * - `socket()` and `socketpair()` outside AF_UNIX, AF_INET, AF_INET6 and
 *   AF_NETLINK with NETLINK_ROUTE (getifaddrs, getaddrinfo's
 *   AI_ADDRCONFIG) or NETLINK_SOCK_DIAG (`ss`): no AF_VSOCK (a VM guest's
 *   way to the hypervisor, not confined by a network namespace), AF_PACKET,
 *   AF_ALG, AF_BLUETOOTH, …;
 * - io_uring (`io_uring_setup`, `_enter`, `_register`): its own path to
 *   sockets and files past per-call checks;
 * - the key-retention service (`keyctl`, `add_key`, `request_key`): the
 *   user's keyrings are not namespaced;
 * - `bpf`, `perf_event_open`, `userfaultfd`;
 * - new mounts and namespaces: `mount`, `umount2`, `pivot_root`, the new
 *   mount API (`open_tree`, `open_tree_attr`, `move_mount`, `fsopen`,
 *   `fsconfig`, `fsmount`, `fspick`, `mount_setattr`), `setns`, and
 *   `unshare`/`clone` with a `CLONE_NEW*` flag; `clone3` keeps its flags
 *   in memory a filter cannot read, so it fails with ENOSYS, on which
 *   glibc, Go and Rust fall back to `clone`;
 * - with `network.strict_unix_sockets` (`plan.linux.strictUnixSockets`),
 *   also `socket(AF_UNIX)` and datagram unix socketpairs: no pathname
 *   socket can then be reached at all (stream socketpairs still work).
 *
 * Syscall numbers are the kernel's own (`arch/x86/entry/syscalls/
 * syscall_64.tbl`; aarch64 uses the generic table,
 * `include/uapi/asm-generic/unistd.h`).
 *
 * @module
 */
import { SandboxError } from "../errors.ts";
import type { SandboxPlan } from "./plan.ts";

/** Architectures the filter is built for (`Deno.build.arch` spelling). */
export type SeccompArch = "x86_64" | "aarch64";

/** What the filter does with one call. */
export type SeccompAction =
  | { readonly kind: "allow" }
  | { readonly kind: "errno"; readonly errno: number };

/** One classic-BPF instruction (`struct sock_filter`). */
export interface BpfInstruction {
  readonly code: number;
  readonly jt: number;
  readonly jf: number;
  readonly k: number;
}

/** errno values (the same on x86-64 and aarch64). */
export const EPERM = 1;
/** errno for "no such call": libc falls back to an older call. */
export const ENOSYS = 38;

// Return values (include/uapi/linux/seccomp.h).
const SECCOMP_RET_ALLOW = 0x7fff0000;
const SECCOMP_RET_ERRNO = 0x00050000;
const SECCOMP_RET_DATA = 0x0000ffff;

// AUDIT_ARCH_* (include/uapi/linux/audit.h): EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
const AUDIT_ARCH: Readonly<Record<SeccompArch, number>> = {
  x86_64: 0xc000003e,
  aarch64: 0xc00000b7,
};
/** On x86-64, x32 calls carry this bit in their number (`__X32_SYSCALL_BIT`). */
const X32_SYSCALL_BIT = 0x40000000;

// Classic BPF opcodes (include/uapi/linux/filter.h, bpf_common.h).
const BPF_LD_W_ABS = 0x20;
const BPF_JMP_JEQ_K = 0x15;
const BPF_JMP_JSET_K = 0x45;
const BPF_RET_K = 0x06;
const BPF_ALU_AND_K = 0x54;

// struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6].
// Both architectures are little-endian: the low half of args[i] is at 16 + 8 * i.
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
const argLow = (i: number) => 16 + 8 * i;

// Socket families and netlink protocols (include/linux/socket.h, uapi/linux/netlink.h).
const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const NETLINK_ROUTE = 0;
// The socket type sits in the low four bits; SOCK_CLOEXEC and SOCK_NONBLOCK above them.
const SOCK_TYPE_MASK = 0xf;
const SOCK_STREAM = 1;
const SOCK_SEQPACKET = 5;
const NETLINK_SOCK_DIAG = 4;

// CLONE_NEW* (include/uapi/linux/sched.h). CLONE_NEWTIME (0x80) shares its bit with the exit
// signal in clone(2), where a value of 0x80 or more is refused anyway (signals end at 64).
const CLONE_NEWTIME = 0x00000080;
const CLONE_NEWNS = 0x00020000;
const CLONE_NEWCGROUP = 0x02000000;
const CLONE_NEWUTS = 0x04000000;
const CLONE_NEWIPC = 0x08000000;
const CLONE_NEWUSER = 0x10000000;
const CLONE_NEWPID = 0x20000000;
const CLONE_NEWNET = 0x40000000;
const NAMESPACE_FLAGS = CLONE_NEWTIME | CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS |
  CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;

/** The calls the filter looks at, by name. */
type Syscall =
  | "socket"
  | "socketpair"
  | "io_uring_setup"
  | "io_uring_enter"
  | "io_uring_register"
  | "keyctl"
  | "add_key"
  | "request_key"
  | "bpf"
  | "perf_event_open"
  | "userfaultfd"
  | "mount"
  | "umount2"
  | "pivot_root"
  | "open_tree"
  | "move_mount"
  | "fsopen"
  | "fsconfig"
  | "fsmount"
  | "fspick"
  | "mount_setattr"
  | "open_tree_attr"
  | "setns"
  | "unshare"
  | "clone"
  | "clone3";

/** Syscall numbers per architecture, from the kernel's tables. */
export const SYSCALL_NUMBERS: Readonly<Record<SeccompArch, Readonly<Record<Syscall, number>>>> = {
  x86_64: {
    socket: 41,
    socketpair: 53,
    clone: 56,
    pivot_root: 155,
    mount: 165,
    umount2: 166,
    add_key: 248,
    request_key: 249,
    keyctl: 250,
    unshare: 272,
    perf_event_open: 298,
    setns: 308,
    bpf: 321,
    userfaultfd: 323,
    io_uring_setup: 425,
    io_uring_enter: 426,
    io_uring_register: 427,
    open_tree: 428,
    move_mount: 429,
    fsopen: 430,
    fsconfig: 431,
    fsmount: 432,
    fspick: 433,
    clone3: 435,
    mount_setattr: 442,
    open_tree_attr: 467,
  },
  aarch64: {
    umount2: 39,
    mount: 40,
    pivot_root: 41,
    unshare: 97,
    socket: 198,
    socketpair: 199,
    add_key: 217,
    request_key: 218,
    keyctl: 219,
    clone: 220,
    perf_event_open: 241,
    setns: 268,
    bpf: 280,
    userfaultfd: 282,
    io_uring_setup: 425,
    io_uring_enter: 426,
    io_uring_register: 427,
    open_tree: 428,
    move_mount: 429,
    fsopen: 430,
    fsconfig: 431,
    fsmount: 432,
    fspick: 433,
    clone3: 435,
    mount_setattr: 442,
    open_tree_attr: 467,
  },
};

/** Calls refused outright, whatever their arguments. */
export const REFUSED_SYSCALLS: readonly Syscall[] = Object.freeze([
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
]);

/** Socket families a sandboxed command may create (anything else: EPERM). */
export const ALLOWED_SOCKET_FAMILIES: readonly number[] = Object.freeze([
  AF_UNIX,
  AF_INET,
  AF_INET6,
  AF_NETLINK,
]);

/** Netlink protocols allowed with AF_NETLINK. */
export const ALLOWED_NETLINK_PROTOCOLS: readonly number[] = Object.freeze([
  NETLINK_ROUTE,
  NETLINK_SOCK_DIAG,
]);

/** The architecture this process runs on, or null when the filter has no table for it. */
export function currentSeccompArch(): SeccompArch | null {
  const arch: string = Deno.build.arch;
  return arch === "x86_64" || arch === "aarch64" ? arch : null;
}

type Target =
  | "allow"
  | "eperm"
  | "enosys"
  | "socket"
  | "socketpair"
  | "netlink"
  | "nsflags"
  | "pairtype";
type Op =
  | { readonly op: "load"; readonly offset: number }
  | { readonly op: "and"; readonly k: number }
  | { readonly op: "jeq" | "jset"; readonly k: number; readonly then: Target }
  | { readonly op: "ret"; readonly value: number }
  | { readonly op: "label"; readonly name: Target };

/**
 * Returns the seccomp filter for `plan` on `arch` as the bytes bwrap reads
 * from `--seccomp FD`: an array of `struct sock_filter` (8 bytes each,
 * little-endian, as both supported architectures are).
 *
 * The plan's posture does not change the rules today (with or without the
 * proxy the command needs the same families: its own loopback and the
 * bridge are AF_INET/AF_INET6); it is an argument so that a posture that
 * needs a different filter can have one without a new call site.
 *
 * Throws {@linkcode SandboxError} (`sandbox_failed`) for an architecture
 * without a syscall table: running without the filter would be silent.
 *
 * @example
 * ```ts
 * const bytes = buildSeccompFilter(plan, "x86_64");
 * // hand `bytes` to bwrap on a descriptor: bwrap --seccomp 3 …
 * ```
 */
export function buildSeccompFilter(plan: SandboxPlan, arch: SeccompArch): Uint8Array {
  return encodeBpf(
    buildSeccompProgram(arch, { strictUnixSockets: plan.linux?.strictUnixSockets === true }),
  );
}

/** Options for {@linkcode buildSeccompProgram}. */
export interface SeccompProgramOptions {
  /**
   * Refuse `socket(AF_UNIX, …)` and datagram `socketpair(AF_UNIX, …)`
   * (EPERM): with no unconnected unix socket, the command can reach no
   * pathname socket at all, whatever path it was bound by and whenever.
   * Stream and seqpacket socketpairs (pipes between processes) still work.
   */
  readonly strictUnixSockets?: boolean;
}

/** The same filter as instructions (for the decoder and the tests). */
export function buildSeccompProgram(
  arch: SeccompArch,
  options: SeccompProgramOptions = {},
): BpfInstruction[] {
  const strict = options.strictUnixSockets === true;
  const numbers = SYSCALL_NUMBERS[arch];
  const auditArch = AUDIT_ARCH[arch];
  if (numbers === undefined || auditArch === undefined) {
    throw new SandboxError(
      "sandbox_failed",
      `Cannot build the seccomp filter: no syscall table for architecture "${arch}" ` +
        "(supported: x86_64, aarch64)",
    );
  }
  const program: Op[] = [];
  program.push({ op: "load", offset: OFFSET_NR });
  if (arch === "x86_64") program.push({ op: "jset", k: X32_SYSCALL_BIT, then: "eperm" });
  for (const name of REFUSED_SYSCALLS) {
    program.push({ op: "jeq", k: numbers[name], then: "eperm" });
  }
  program.push({ op: "jeq", k: numbers.clone3, then: "enosys" });
  program.push({ op: "jeq", k: numbers.socket, then: "socket" });
  program.push({ op: "jeq", k: numbers.socketpair, then: strict ? "socketpair" : "socket" });
  program.push({ op: "jeq", k: numbers.clone, then: "nsflags" });
  program.push({ op: "jeq", k: numbers.unshare, then: "nsflags" });
  program.push({ op: "ret", value: SECCOMP_RET_ALLOW });

  if (strict) {
    // socketpair(AF_UNIX, SOCK_STREAM | SOCK_SEQPACKET (+ flags)) only: a datagram pair
    // could still sendto() or connect() a host datagram socket by path.
    program.push({ op: "label", name: "socketpair" });
    program.push({ op: "load", offset: argLow(0) });
    program.push({ op: "jeq", k: AF_UNIX, then: "pairtype" });
    program.push({ op: "ret", value: SECCOMP_RET_ERRNO | EPERM });
    program.push({ op: "label", name: "pairtype" });
    program.push({ op: "load", offset: argLow(1) });
    program.push({ op: "and", k: SOCK_TYPE_MASK });
    program.push({ op: "jeq", k: SOCK_STREAM, then: "allow" });
    program.push({ op: "jeq", k: SOCK_SEQPACKET, then: "allow" });
    program.push({ op: "ret", value: SECCOMP_RET_ERRNO | EPERM });
  }
  program.push({ op: "label", name: "socket" });
  program.push({ op: "load", offset: argLow(0) });
  for (const family of ALLOWED_SOCKET_FAMILIES) {
    if (strict && family === AF_UNIX) continue;
    program.push({ op: "jeq", k: family, then: family === AF_NETLINK ? "netlink" : "allow" });
  }
  program.push({ op: "ret", value: SECCOMP_RET_ERRNO | EPERM });

  program.push({ op: "label", name: "netlink" });
  program.push({ op: "load", offset: argLow(2) });
  for (const protocol of ALLOWED_NETLINK_PROTOCOLS) {
    program.push({ op: "jeq", k: protocol, then: "allow" });
  }
  program.push({ op: "ret", value: SECCOMP_RET_ERRNO | EPERM });

  // clone(flags, …) and unshare(flags): flags are the first argument on both architectures,
  // and the kernel reads only their low 32 bits.
  program.push({ op: "label", name: "nsflags" });
  program.push({ op: "load", offset: argLow(0) });
  program.push({ op: "jset", k: NAMESPACE_FLAGS, then: "eperm" });
  program.push({ op: "ret", value: SECCOMP_RET_ALLOW });

  program.push({ op: "label", name: "eperm" });
  program.push({ op: "ret", value: SECCOMP_RET_ERRNO | EPERM });
  program.push({ op: "label", name: "enosys" });
  program.push({ op: "ret", value: SECCOMP_RET_ERRNO | ENOSYS });
  program.push({ op: "label", name: "allow" });
  program.push({ op: "ret", value: SECCOMP_RET_ALLOW });

  // Head: the architecture check; a foreign one (or a different ABI) gets EPERM for every call.
  const head: BpfInstruction[] = [
    { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: OFFSET_ARCH },
    { code: BPF_JMP_JEQ_K, jt: 1, jf: 0, k: auditArch },
    { code: BPF_RET_K, jt: 0, jf: 0, k: SECCOMP_RET_ERRNO | EPERM },
  ];
  return [...head, ...assemble(program)];
}

/** Resolves labels into relative jump offsets (a jump's false branch falls through). */
function assemble(ops: readonly Op[]): BpfInstruction[] {
  const labels = new Map<Target, number>();
  let index = 0;
  for (const op of ops) {
    if (op.op === "label") labels.set(op.name, index);
    else index++;
  }
  const out: BpfInstruction[] = [];
  for (const op of ops) {
    switch (op.op) {
      case "label":
        break;
      case "load":
        out.push({ code: BPF_LD_W_ABS, jt: 0, jf: 0, k: op.offset });
        break;
      case "ret":
        out.push({ code: BPF_RET_K, jt: 0, jf: 0, k: op.value });
        break;
      case "and":
        out.push({ code: BPF_ALU_AND_K, jt: 0, jf: 0, k: op.k });
        break;
      case "jeq":
      case "jset": {
        const target = labels.get(op.then);
        if (target === undefined) throw new Error(`seccomp: no label "${op.then}"`);
        const offset = target - (out.length + 1);
        if (offset < 0 || offset > 255) throw new Error(`seccomp: jump to "${op.then}" too far`);
        out.push({
          code: op.op === "jeq" ? BPF_JMP_JEQ_K : BPF_JMP_JSET_K,
          jt: offset,
          jf: 0,
          k: op.k >>> 0,
        });
        break;
      }
    }
  }
  return out;
}

/** `struct sock_filter[]` as little-endian bytes. */
export function encodeBpf(program: readonly BpfInstruction[]): Uint8Array {
  const bytes = new Uint8Array(program.length * 8);
  const view = new DataView(bytes.buffer);
  program.forEach((ins, i) => {
    view.setUint16(i * 8, ins.code, true);
    view.setUint8(i * 8 + 2, ins.jt);
    view.setUint8(i * 8 + 3, ins.jf);
    view.setUint32(i * 8 + 4, ins.k >>> 0, true);
  });
  return bytes;
}

/** The inverse of {@linkcode encodeBpf}. */
export function decodeBpf(bytes: Uint8Array): BpfInstruction[] {
  if (bytes.length % 8 !== 0) throw new Error("seccomp: length is not a multiple of 8");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: BpfInstruction[] = [];
  for (let i = 0; i < bytes.length; i += 8) {
    out.push({
      code: view.getUint16(i, true),
      jt: view.getUint8(i + 2),
      jf: view.getUint8(i + 3),
      k: view.getUint32(i + 4, true),
    });
  }
  return out;
}

/** The input of one call, as the kernel hands it to the filter (`struct seccomp_data`). */
export interface SeccompCall {
  readonly arch: number;
  readonly nr: number;
  /** Up to six arguments (the filter reads only their low 32 bits). */
  readonly args?: readonly number[];
}

/**
 * Runs `program` on one call, as the kernel would, and returns what it
 * decides. Only the instructions the builder emits are understood; any
 * other (or a jump out of the program) throws, so a test cannot pass on a
 * program it did not really walk.
 *
 * @example
 * ```ts
 * evaluateSeccomp(buildSeccompProgram("x86_64"), { arch: 0xc000003e, nr: 425 });
 * // { kind: "errno", errno: 1 }
 * ```
 */
export function evaluateSeccomp(
  program: readonly BpfInstruction[],
  call: SeccompCall,
): SeccompAction {
  const load = (offset: number): number => {
    if (offset === OFFSET_NR) return call.nr >>> 0;
    if (offset === OFFSET_ARCH) return call.arch >>> 0;
    const i = (offset - 16) / 8;
    if (!Number.isInteger(i) || i < 0 || i > 5) throw new Error(`seccomp: load at ${offset}`);
    return (call.args?.[i] ?? 0) >>> 0;
  };
  let acc = 0;
  let pc = 0;
  for (let steps = 0; steps <= program.length; steps++) {
    const ins = program[pc];
    if (ins === undefined) throw new Error(`seccomp: fell off the program at ${pc}`);
    switch (ins.code) {
      case BPF_LD_W_ABS:
        acc = load(ins.k);
        pc++;
        break;
      case BPF_ALU_AND_K:
        acc = (acc & ins.k) >>> 0;
        pc++;
        break;
      case BPF_JMP_JEQ_K:
        pc += 1 + (acc === ins.k >>> 0 ? ins.jt : ins.jf);
        break;
      case BPF_JMP_JSET_K:
        pc += 1 + ((acc & ins.k) !== 0 ? ins.jt : ins.jf);
        break;
      case BPF_RET_K: {
        const value = ins.k >>> 0;
        if (value === SECCOMP_RET_ALLOW) return { kind: "allow" };
        if ((value & 0xffff0000) === SECCOMP_RET_ERRNO) {
          return { kind: "errno", errno: value & SECCOMP_RET_DATA };
        }
        throw new Error(`seccomp: unexpected return value 0x${value.toString(16)}`);
      }
      default:
        throw new Error(`seccomp: unexpected opcode 0x${ins.code.toString(16)} at ${pc}`);
    }
  }
  throw new Error("seccomp: the program loops");
}

/** `AUDIT_ARCH_*` of each supported architecture (for tests and the decoder). */
export const SECCOMP_AUDIT_ARCH: Readonly<Record<SeccompArch, number>> = AUDIT_ARCH;
