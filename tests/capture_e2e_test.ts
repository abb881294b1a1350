/**
 * Transparent capture end to end: real bwrap, the real bridge (DNS stub and
 * capture listeners in the sandbox's network namespace) and the real proxy,
 * driven through `runSandboxed()` so the proxy's resolver can be counted.
 * Programs inside connect directly, ignoring the proxy variables; fixtures
 * listen on a random 127.x.y.z address of the host (ports 80 and 443: the
 * test itself runs as root) and are reached through `--resolve`-style names.
 * Every case runs twice: as root in this process, and as `nobody` (uid
 * 65534, through setpriv) in a child that runs the same code and reports
 * back (tests/capture_helpers.ts), where bwrap's user namespace owns the
 * sandbox's network namespace.
 */
import assert from "node:assert/strict";
import { initCa } from "../proxy/ca.ts";
import { createLeafIssuer } from "../proxy/leaf_certs.ts";
import { renderCapturedSummary } from "../run/report.ts";
import { type CaptureOutcome, type CaptureRun, runCaptureScript } from "./capture_helpers.ts";
import { type Nobody, prepareNobody, unprivilegedBwrapWorks } from "./nobody_helpers.ts";
import { descendants, hasProgram } from "./run_helpers.ts";

const isRoot = Deno.uid() === 0;
const ignore = !isRoot || !hasProgram("/usr/bin/bwrap") || !hasProgram("/usr/bin/curl") ||
  !hasProgram("/usr/bin/python3");
if (ignore) {
  console.warn(
    "capture e2e tests skipped: they need root (fixtures on ports 80/443 of the host, and " +
      "setpriv for the unprivileged runs), /usr/bin/bwrap, /usr/bin/curl and /usr/bin/python3",
  );
}
const unprivileged = !ignore && unprivilegedBwrapWorks();
if (!ignore && !unprivileged) {
  console.warn("capture e2e tests as nobody skipped: unprivileged bwrap does not work here");
}

/** Who launches the sandbox: the test's own user (root), or nobody. */
const MODES = [
  { name: "root", ignore },
  { name: "nobody", ignore: !unprivileged },
] as const;

/** One copy of Deno and its npm cache for every unprivileged run of this file. */
let shared: Promise<Nobody> | null = null;
async function runAs(mode: "root" | "nobody", request: CaptureRun): Promise<CaptureOutcome> {
  if (mode === "root") return await runCaptureScript(request);
  shared ??= prepareNobody().then((nobody) => {
    addEventListener("unload", () => Deno.removeSync(nobody.dir, { recursive: true }));
    return nobody;
  });
  return await runCaptureScript(request, await shared);
}

/** A loopback address of the host no other test is likely to use. */
function randomLoopback(): string {
  const byte = () => 2 + Math.floor(Math.random() * 250);
  return `127.${byte()}.${byte()}.${byte()}`;
}

interface Fixture extends AsyncDisposable {
  readonly address: string;
  readonly port: number;
  /** Bytes each accepted connection sent, in order of acceptance. */
  readonly seen: string[];
}

/** A TCP fixture; `serve` answers one connection. Retries a few addresses when one is taken. */
function startFixture(
  port: number,
  serve: (conn: Deno.Conn, seen: string[], index: number) => Promise<void>,
  listen: (hostname: string, port: number) => Deno.Listener = (hostname, p) =>
    Deno.listen({ hostname, port: p }),
): Fixture {
  let listener: Deno.Listener | null = null;
  let address = "";
  for (let attempt = 0; listener === null; attempt++) {
    address = randomLoopback();
    try {
      listener = listen(address, port);
    } catch (error) {
      if (attempt >= 5) throw error;
    }
  }
  const seen: string[] = [];
  const conns = new Set<Deno.Conn>();
  const loop = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener!.accept();
      } catch {
        return;
      }
      conns.add(conn);
      const index = seen.push("") - 1;
      serve(conn, seen, index).catch(() => {}).finally(() => {
        conns.delete(conn);
        try {
          conn.close();
        } catch {
          // closed
        }
      });
    }
  })();
  return {
    address,
    port: (listener.addr as Deno.NetAddr).port,
    seen,
    async [Symbol.asyncDispose]() {
      listener!.close();
      for (const conn of conns) conn.close();
      await loop;
    },
  };
}

async function readHead(conn: Deno.Conn): Promise<string> {
  const buf = new Uint8Array(16384);
  let head = "";
  while (!head.includes("\r\n\r\n")) {
    const n = await conn.read(buf);
    if (n === null) break;
    head += new TextDecoder().decode(buf.subarray(0, n));
  }
  return head;
}

async function writeText(conn: Deno.Conn, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** A fixture handler that records what the client sent first and answers `echo:` and it. */
async function echo(conn: Deno.Conn, seen: string[], index: number): Promise<void> {
  const buf = new Uint8Array(256);
  const n = await conn.read(buf);
  seen[index] = n === null ? "" : new TextDecoder().decode(buf.subarray(0, n));
  await writeText(conn, `echo:${seen[index]}`);
}

const httpServe = (body: string) => async (conn: Deno.Conn, seen: string[], index: number) => {
  seen[index] = await readHead(conn);
  await writeText(
    conn,
    `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
};

/**
 * The launcher's upstream proxy (its own `HTTPS_PROXY`), on loopback: records each CONNECT
 * target and splices the tunnel to `to`. It is how these tests pin where the proxy dials a
 * literal address (TEST-NET and documentation ranges) without a packet to a real one.
 */
function startUpstream(to: () => { address: string; port: number }) {
  const targets: string[] = [];
  const fixture = startFixture(0, async (conn) => {
    const head = await readHead(conn);
    targets.push(/^CONNECT (\S+) HTTP\/1\.1\r\n/.exec(head)?.[1] ?? `(not CONNECT) ${head}`);
    const { address, port } = to();
    const upstream = await Deno.connect({ hostname: address, port });
    try {
      await writeText(conn, "HTTP/1.1 200 Connection established\r\n\r\n");
      await Promise.all([
        conn.readable.pipeTo(upstream.writable).catch(() => {}),
        upstream.readable.pipeTo(conn.writable, { preventClose: true }).catch(() => {}),
      ]);
    } finally {
      try {
        upstream.close();
      } catch {
        // closed by the pipe
      }
    }
  });
  return Object.assign(fixture, { targets });
}

for (const mode of MODES) {
  Deno.test({
    name: `capture (${mode.name}): curl --noproxy, urllib without proxies and Node fetch reach ` +
      "an allowed name on port 80; a refused name costs no lookup and no dial",
    ignore: mode.ignore,
    async fn() {
      await using allowed = startFixture(80, httpServe("hello-captured"));
      await using other = startFixture(80, httpServe("must-not-be-reached"));
      const node = hasProgram("/usr/bin/node") ? "/usr/bin/node" : null;
      const script = [
        `echo "curl=$(curl -sS -m 10 --noproxy '*' http://allowed.test/)"`,
        `echo "py=$(env -u http_proxy -u HTTP_PROXY -u all_proxy -u ALL_PROXY python3 -c '` +
        `import urllib.request as u; o = u.build_opener(u.ProxyHandler({})); ` +
        `print(o.open("http://allowed.test/", timeout=10).read().decode())')"`,
        node === null
          ? ""
          : `echo "node=$(${node} -e 'fetch("http://allowed.test/").then(r => r.text()).then(t => console.log(t), e => console.log("error:" + e.cause?.code))')"`,
        `echo "denied=$(curl -s -m 10 --noproxy '*' -o /dev/null -w '%{http_code}' http://denied.test/)"`,
        `echo "getent=$(getent hosts any.name.example)"`,
        `echo "localhost=$(getent hosts localhost | head -n 1)"`,
        `echo "uid=$(id -u)"`,
      ].join("\n");
      const { exitCode, decisions, out, err, calls } = await runAs(mode.name, {
        allow: ["allowed.test"],
        table: { "allowed.test": allowed.address, "denied.test": other.address },
        script,
      });
      assert.equal(exitCode, 0, err);
      assert.equal(out.get("uid"), mode.name === "root" ? "0" : "65534");
      assert.equal(out.get("curl"), "hello-captured", err);
      assert.equal(out.get("py"), "hello-captured", err);
      if (node !== null) assert.equal(out.get("node"), "hello-captured", err);
      assert.equal(out.get("denied"), "403");
      assert.match(out.get("getent") ?? "", /^198\.1[89]\.\d+\.\d+\s+any\.name\.example$/);
      assert.match(out.get("localhost") ?? "", /^(127\.0\.0\.1|::1)\s/);
      // The name the policy refused was never looked up, and its fixture never dialled; the
      // allowed name is resolved by the proxy, not inside the sandbox.
      assert.ok(!calls.includes("denied.test"), calls.join(","));
      assert.ok(!calls.includes("any.name.example"), calls.join(","));
      assert.ok(calls.includes("allowed.test"));
      assert.equal(other.seen.length, 0);
      assert.equal(allowed.seen.length, node === null ? 2 : 3);
      for (const head of allowed.seen) assert.match(head, /^GET \/ HTTP\/1\.1\r\n/);
      const captured = decisions.filter((d) => d.protocol === "captured-http");
      assert.ok(captured.some((d) => d.host === "denied.test" && d.decision === "deny"));
      assert.ok(
        captured.some((d) => d.host === "allowed.test" && d.program === "/usr/bin/curl"),
        JSON.stringify(captured),
      );
      assert.match(
        renderCapturedSummary(decisions),
        /\/usr\/bin\/curl connected to allowed\.test:80 directly \(captured; allowed\)/,
      );
    },
  });

  Deno.test({
    name: `capture (${mode.name}): a host:PORT rule admits a plain TCP client on that port and ` +
      "no other port; without a rule nothing is dialled",
    ignore: mode.ignore,
    async fn() {
      await using fixture = startFixture(0, echo);
      // A second port on the same address: captured (another rule names it), not allowed here.
      const second = Deno.listen({ hostname: fixture.address, port: 0 });
      const secondPort = (second.addr as Deno.NetAddr).port;
      let secondAccepted = 0;
      const secondLoop = (async () => {
        for await (const conn of second) {
          secondAccepted++;
          conn.close();
        }
      })();
      try {
        const table = { "allowed.test": fixture.address };
        const client = (name: string, host: string, port: number) =>
          `echo "${name}=$(python3 -c 'import socket,sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
    s.sendall(b"ping"); print(s.recv(100).decode() or "closed")
except OSError as e:
    print("error:" + e.__class__.__name__)' ${host} ${port})"`;
        const script = [
          client("tcp", "allowed.test", fixture.port),
          client("other_port", "allowed.test", secondPort),
        ].join("\n");
        const { exitCode, decisions, out, err } = await runAs(mode.name, {
          allow: [`allowed.test:${fixture.port}`, `elsewhere.test:${secondPort}`],
          table,
          script,
        });
        assert.equal(exitCode, 0, err);
        assert.equal(out.get("tcp"), "echo:ping", err);
        assert.match(out.get("other_port") ?? "", /^(closed|error:)/);
        assert.equal(secondAccepted, 0);
        const denied = decisions.find((d) => d.port === secondPort);
        assert.equal(denied?.protocol, "captured-tcp");
        assert.equal(denied?.decision, "deny");
        assert.equal(denied?.reason, "not_allowed");

        // Without a rule naming the port, it is not captured at all: nothing is dialled.
        const without = await runAs(mode.name, { allow: ["allowed.test"], table, script });
        assert.match(without.out.get("tcp") ?? "", /^(closed|error:)/, without.err);
        assert.equal(fixture.seen.length, 1);
      } finally {
        second.close();
        await secondLoop;
      }
    },
  });

  Deno.test({
    name: `capture (${mode.name}): ssh to allowed.test:PORT gets through with a host:PORT rule ` +
      "and is refused without one",
    ignore: mode.ignore || !hasProgram("/usr/bin/ssh"),
    async fn() {
      await using sshd = startFixture(0, async (conn, seen, index) => {
        await writeText(conn, "SSH-2.0-CaptureFixture\r\n");
        const buf = new Uint8Array(256);
        const n = await conn.read(buf);
        seen[index] = n === null ? "" : new TextDecoder().decode(buf.subarray(0, n));
      });
      const table = { "allowed.test": sshd.address };
      const script = `ssh -o StrictHostKeyChecking=no -o BatchMode=yes -o ConnectTimeout=10 ` +
        `-o UserKnownHostsFile=/dev/null -p ${sshd.port} allowed.test true; echo "ssh=$?"`;
      const allowed = await runAs(mode.name, {
        allow: [`allowed.test:${sshd.port}`],
        table,
        script,
      });
      assert.equal(sshd.seen.length, 1, allowed.err);
      assert.match(sshd.seen[0], /^SSH-2\.0-OpenSSH/);
      assert.equal(allowed.decisions.find((d) => d.port === sshd.port)?.program, "/usr/bin/ssh");
      // The rule is for another port: the connection is captured (the port is in a rule) and refused.
      const refused = await runAs(mode.name, {
        allow: [
          `allowed.test:${sshd.port === 65535 ? 65534 : sshd.port + 1}`,
          `x.test:${sshd.port}`,
        ],
        table,
        script,
      });
      assert.notEqual(refused.out.get("ssh"), "0");
      assert.equal(sshd.seen.length, 1, refused.err);
      const denied = refused.decisions.find((d) => d.port === sshd.port);
      assert.equal(denied?.decision, "deny");
    },
  });

  Deno.test({
    name: `capture (${mode.name}): HTTPS on 443 to an allowed name works; a ClientHello for ` +
      "another name is refused",
    ignore: mode.ignore,
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: "sandbox_capture_ca_" });
      try {
        const ca = (await initCa(`${dir}/ca`, { commonName: "capture test CA" })).ca;
        const leaf = createLeafIssuer(ca).certificateFor("allowed.test");
        await using tls = startFixture(
          443,
          httpServe("hello-tls"),
          (hostname, port) =>
            Deno.listenTls({ hostname, port, cert: leaf.chainPem, key: leaf.keyPem }),
        );
        const script = [
          `echo "https=$(curl -sS -m 10 --noproxy '*' --cacert ca.pem https://allowed.test/)"`,
          // SNI other.test, dialled at allowed.test's synthetic address.
          `curl -s -m 10 --noproxy '*' -k --connect-to other.test:443:allowed.test:443 https://other.test/ >/dev/null; echo "sni=$?"`,
        ].join("\n");
        const { exitCode, decisions, out, err, calls } = await runAs(mode.name, {
          allow: ["allowed.test", "other.test"],
          table: { "allowed.test": tls.address, "other.test": tls.address },
          script,
          files: { "ca.pem": ca.certPem },
        });
        assert.equal(exitCode, 0, err);
        assert.equal(out.get("https"), "hello-tls", err);
        assert.notEqual(out.get("sni"), "0");
        assert.equal(tls.seen.length, 1);
        const mismatch = decisions.find((d) =>
          d.protocol === "captured-tls" && d.decision === "deny"
        );
        assert.equal(mismatch?.host, "allowed.test");
        assert.ok(!calls.includes("other.test"));
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });

  Deno.test({
    name: `capture (${mode.name}): a tls://HOST:PORT rule decides a non-443 port like CONNECT ` +
      "(SNI checked before any lookup); unmarked, the port is a plain tunnel",
    ignore: mode.ignore,
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: "sandbox_capture_tls_port_" });
      try {
        const ca = (await initCa(`${dir}/ca`, { commonName: "capture test CA" })).ca;
        const leaf = createLeafIssuer(ca).certificateFor("allowed.test");
        await using tls = startFixture(
          0,
          httpServe("hello-tls-port"),
          (hostname, port) =>
            Deno.listenTls({ hostname, port, cert: leaf.chainPem, key: leaf.keyPem }),
        );
        const port = tls.port;
        const script = [
          // SNI other.test first, dialled at allowed.test's synthetic address: refused before
          // allowed.test is looked up (the one lookup below is the good request's).
          `curl -s -m 10 --noproxy '*' -k --connect-to other.test:${port}:allowed.test:${port} https://other.test:${port}/ >/dev/null; echo "sni=$?"`,
          `echo "https=$(curl -sS -m 10 --noproxy '*' --cacert ca.pem https://allowed.test:${port}/)"`,
        ].join("\n");
        const files = { "ca.pem": ca.certPem };
        const table = { "allowed.test": tls.address, "other.test": tls.address };

        const marked = await runAs(mode.name, {
          allow: [`tls://allowed.test:${port}`, `other.test:${port}`],
          table,
          script,
          files,
        });
        assert.equal(marked.exitCode, 0, marked.err);
        assert.notEqual(marked.out.get("sni"), "0");
        assert.equal(marked.out.get("https"), "hello-tls-port", marked.err);
        assert.equal(tls.seen.length, 1, "the mismatched ClientHello never reached the fixture");
        assert.deepEqual(marked.calls, ["allowed.test"]);
        const onPort = marked.decisions.filter((d) => d.port === port);
        const mismatch = onPort.find((d) => d.decision === "deny");
        assert.equal(mismatch?.protocol, "captured-tls");
        assert.equal(mismatch?.reason, "host_mismatch");
        assert.equal(mismatch?.host, "allowed.test");
        const good = onPort.find((d) => d.decision === "allow");
        assert.equal(good?.protocol, "captured-tls");
        assert.equal(good?.rule, `tls://allowed.test:${port}`);

        // The same port without the marker: a plain tunnel, so the other name's ClientHello
        // passes through to the fixture (which answers for allowed.test; -k accepts it).
        const plain = await runAs(mode.name, {
          allow: [`allowed.test:${port}`, `other.test:${port}`],
          table,
          script,
          files,
        });
        assert.equal(plain.exitCode, 0, plain.err);
        assert.equal(plain.out.get("sni"), "0", plain.err);
        assert.equal(plain.out.get("https"), "hello-tls-port", plain.err);
        assert.equal(tls.seen.length, 3);
        const tunnels = plain.decisions.filter((d) => d.port === port);
        assert.equal(tunnels.length, 2);
        for (const d of tunnels) {
          assert.equal(d.protocol, "captured-tcp");
          assert.equal(d.decision, "allow");
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });

  Deno.test({
    name: `capture (${mode.name}): an execpolicy allow command keeps an empty network ` +
      "namespace: no synthetic range, no stub, no listener, the host's resolv.conf",
    ignore: mode.ignore,
    async fn() {
      const script = [
        `echo "range=$(grep -c '198\\.18\\.' /proc/net/fib_trie)"`,
        `echo "stub=$(grep -c 198.18.0.1 /etc/resolv.conf)"`,
        // Sockets in the namespace, TCP and UDP alike: none (nothing listens for the command).
        `echo "tcp=$(awk 'FNR > 1' /proc/net/tcp /proc/net/tcp6 | wc -l)"`,
        `echo "udp=$(awk 'FNR > 1' /proc/net/udp /proc/net/udp6 | wc -l)"`,
        `echo "proxy=[$HTTP_PROXY]"`,
        `echo "uid=$(id -u)"`,
      ].join("\n");
      const { exitCode, out, err, decisions } = await runAs(mode.name, {
        allow: ["allowed.test"],
        table: {},
        script,
        config: `[execpolicy]\n"sh *" = "allow"\n`,
      });
      assert.equal(exitCode, 0, err);
      assert.equal(out.get("uid"), mode.name === "root" ? "0" : "65534");
      assert.equal(out.get("range"), "0", err);
      assert.equal(out.get("stub"), "0", err);
      assert.equal(out.get("tcp"), "0", err);
      assert.equal(out.get("udp"), "0", err);
      assert.equal(out.get("proxy"), "[]");
      assert.deepEqual(decisions, []);
    },
  });

  Deno.test({
    name: `capture (${mode.name}): the command cannot add an address, set the loopback ` +
      "device down or up, or create a device, while the bridge's stub still answers",
    ignore: mode.ignore,
    async fn() {
      // rtnetlink spoken from python3 (no iproute2 needed): each request's errno, or "ok".
      const netlink = `import socket, struct, errno
def ask(kind, flags, body):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    s.bind((0, 0))
    s.send(struct.pack("=IHHII", 16 + len(body), kind, flags, 1, 0) + body)
    reply = s.recv(65536)
    if struct.unpack_from("=H", reply, 4)[0] != 2:
        return "reply"
    code = -struct.unpack_from("=i", reply, 16)[0]
    return "ok" if code == 0 else errno.errorcode.get(code, str(code))
def attr(kind, data):
    return struct.pack("=HH", 4 + len(data), kind) + data + b"\\0" * (-len(data) % 4)
REQ, ACK, EXCL, CREATE = 1, 4, 0x200, 0x400
ip = socket.inet_aton("10.77.0.1")
print("addr=" + ask(20, REQ | ACK | EXCL | CREATE,
    struct.pack("=BBBBI", socket.AF_INET, 8, 0, 0, 1) + attr(2, ip) + attr(1, ip)))
print("down=" + ask(16, REQ | ACK, struct.pack("=BxHiII", 0, 0, 1, 0, 1)))
print("up=" + ask(16, REQ | ACK, struct.pack("=BxHiII", 0, 0, 1, 1, 1)))
print("link=" + ask(16, REQ | ACK | EXCL | CREATE, struct.pack("=BxHiII", 0, 0, 0, 0, 0) +
    attr(3, b"sbx0\\0") + attr(18, attr(1, b"dummy\\0"))))
try:
    socket.socket().bind(("10.77.0.1", 0)); print("bound=yes")
except OSError as e:
    print("bound=" + errno.errorcode.get(e.errno, str(e.errno)))
`;
      const script = [
        `python3 -c '${netlink}'`,
        `echo "getent=$(getent hosts after.example)"`,
        `echo "uid=$(id -u)"`,
      ].join("\n");
      const { exitCode, out, err } = await runAs(mode.name, { allow: [], table: {}, script });
      assert.equal(exitCode, 0, err);
      assert.equal(out.get("uid"), mode.name === "root" ? "0" : "65534");
      assert.equal(out.get("addr"), "EPERM", err);
      assert.equal(out.get("down"), "EPERM", err);
      assert.equal(out.get("up"), "EPERM", err);
      assert.equal(out.get("link"), "EPERM", err);
      assert.equal(out.get("bound"), "EADDRNOTAVAIL", err);
      assert.match(out.get("getent") ?? "", /^198\.1[89]\.\d+\.\d+\s+after\.example$/, err);
    },
  });

  Deno.test({
    name: `capture (${mode.name}): literal addresses an allow rule names are captured (IPv4 and ` +
      "IPv6) and decided with the address as host; an address no rule names has no route; a " +
      "loopback server inside on the same port keeps working",
    ignore: mode.ignore,
    async fn() {
      await using fixture = startFixture(0, echo);
      await using upstream = startUpstream(() => fixture);
      const port = 5432;
      const client = (name: string, host: string, p: number) =>
        `echo "${name}=$(python3 -c 'import socket,sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
    s.sendall(b"ping"); print(s.recv(100).decode() or "closed")
except OSError as e:
    print("error:" + (e.strerror or e.__class__.__name__))' ${host} ${p})"`;
      const script = [
        client("v4", "203.0.113.7", port),
        client("v6", "2001:db8::7", port),
        // The attack: an address no rule names, and a named one on a port no rule captures.
        client("unnamed", "203.0.113.8", port),
        client("unnamed_v6", "2001:db8::8", port),
        client("other_port", "203.0.113.7", port + 1),
        // Port 80 is captured on a named literal too; the rule is for another port: 403.
        `echo "http_v6=$(curl -s -m 10 --noproxy '*' -o /dev/null -w '%{http_code}' 'http://[2001:db8::7]/')"`,
        // The command's own server on loopback, on the captured port, still binds and answers.
        `echo "inside=$(python3 -c 'import socket
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", ${port})); srv.listen(1)
c = socket.create_connection(("127.0.0.1", ${port}), timeout=10)
a, _ = srv.accept(); a.sendall(b"inside-server"); print(c.recv(100).decode())')"`,
        `echo "addresses=$(ip -o addr show dev lo 2>/dev/null | awk '{print $4}' | sort | tr '\\n' ' ')"`,
      ].join("\n");
      const { exitCode, decisions, calls, out, err } = await runAs(mode.name, {
        allow: [`203.0.113.7:${port}`, `[2001:db8::7]:${port}`, "127.0.0.1", "[::1]:22"],
        table: {},
        script,
        env: {
          HTTPS_PROXY: `http://${upstream.address}:${upstream.port}`,
          HTTP_PROXY: `http://${upstream.address}:${upstream.port}`,
        },
      });
      assert.equal(exitCode, 0, err);
      assert.equal(out.get("v4"), "echo:ping", err);
      assert.equal(out.get("v6"), "echo:ping", err);
      assert.match(out.get("unnamed") ?? "", /^error:Network is unreachable/);
      assert.match(out.get("unnamed_v6") ?? "", /^error:(Network is unreachable|No route to host)/);
      assert.match(out.get("other_port") ?? "", /^error:Connection refused/);
      assert.equal(out.get("inside"), "inside-server", err);
      assert.equal(out.get("http_v6"), "403", err);
      const http = decisions.find((d) => d.protocol === "captured-http");
      assert.equal(http?.host, "2001:db8::7");
      // The exact rule names port 5432 only, so on port 80 the private-address floor refuses it.
      assert.equal(http?.reason, "not_allowed_local");
      // The proxy dialled exactly the two named literals (through the pinned upstream), never
      // looked a name up, and never dialled the unnamed ones.
      assert.deepEqual(upstream.targets.sort(), [`203.0.113.7:${port}`, `[2001:db8::7]:${port}`]);
      assert.deepEqual(fixture.seen, ["ping", "ping"]);
      assert.deepEqual(calls, []);
      const captured = decisions.filter((d) => d.protocol === "captured-tcp");
      assert.deepEqual(captured.map((d) => `${d.host} ${d.port} ${d.decision}`).sort(), [
        `2001:db8::7 ${port} allow`,
        `203.0.113.7 ${port} allow`,
      ]);
      assert.ok(captured.every((d) => /python3/.test(d.program ?? "")), JSON.stringify(captured));
      // The loopback rules added nothing (no 127.0.0.1/32 beside the /8): lo holds its own
      // addresses, the synthetic range and the two named literals, nothing else.
      assert.deepEqual((out.get("addresses") ?? "").trim().split(" ").sort(), [
        "127.0.0.1/8",
        "198.18.0.1/15",
        "2001:db8::7/128",
        "203.0.113.7/32",
        "::1/128",
      ]);
    },
  });
}

Deno.test({
  name: "capture (nobody): the bridge starts before bwrap in a user namespace of its own, bwrap " +
    "runs inside it, and only the bridge holds capabilities",
  ignore: !unprivileged || !hasProgram("/usr/bin/unshare"),
  async fn() {
    shared ??= prepareNobody().then((nobody) => {
      addEventListener("unload", () => Deno.removeSync(nobody.dir, { recursive: true }));
      return nobody;
    });
    const nobody = await shared;
    const work = `${nobody.dir}/work-tree`;
    await Deno.mkdir(work);
    await nobody.chown(work);
    const [program, ...args] = nobody.argv(
      ["run", "--allow", "allowed.test", "--", "sh", "-c", "echo ready; exec sleep 30"],
    );
    const child = new Deno.Command(program, {
      args,
      cwd: work,
      clearEnv: true,
      env: { PATH: "/usr/bin:/bin", HOME: work, ...nobody.denoEnv },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    try {
      const reader = child.stdout.getReader();
      let text = "";
      while (!text.includes("ready")) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      reader.releaseLock();
      assert.match(text, /ready/);
      const read = (pid: number, file: string) => Deno.readTextFileSync(`/proc/${pid}/${file}`);
      const userns = (pid: number) => Deno.readLinkSync(`/proc/${pid}/ns/user`);
      const capEff = (pid: number) => /CapEff:\s*([0-9a-f]+)/.exec(read(pid, "status"))![1];
      const snapshot = () =>
        descendants(child.pid).flatMap((pid) => {
          try {
            return [{ pid, argv: read(pid, "cmdline").split("\0") }];
          } catch {
            return []; // exited meanwhile
          }
        });
      // "ready" is printed before sh execs sleep: wait (bounded) for the exec.
      let tree = snapshot();
      for (let i = 0; i < 500 && !tree.some((p) => p.argv[0] === "sleep"); i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        tree = snapshot();
      }
      const bridge = tree.find((p) => p.argv.includes("__bridge"));
      const outerBwrap = tree.find((p) => p.argv[0].endsWith("/bwrap"));
      const command = tree.find((p) => p.argv[0] === "sleep");
      assert.ok(bridge && outerBwrap && command, JSON.stringify(tree));
      const launcherNs = userns(child.pid);
      // The bridge's namespace is its own; bwrap (the outer process) was started inside it.
      assert.notEqual(userns(bridge.pid), launcherNs);
      assert.equal(userns(outerBwrap.pid), userns(bridge.pid));
      assert.notEqual(userns(command.pid), userns(bridge.pid));
      assert.equal(read(bridge.pid, "uid_map").trim().split(/\s+/).join(" "), "65534 65534 1");
      // Capabilities: the bridge has them (in its namespace and the sandbox's, which it owns);
      // bwrap and the command have none.
      assert.notEqual(BigInt(`0x${capEff(bridge.pid)}`) & (1n << 12n), 0n, "CAP_NET_ADMIN");
      assert.equal(BigInt(`0x${capEff(outerBwrap.pid)}`), 0n);
      assert.equal(BigInt(`0x${capEff(command.pid)}`), 0n);
    } finally {
      clearTimeout(timer);
      child.kill("SIGTERM");
      await child.output().catch(() => {});
    }
  },
});

Deno.test({
  name: "capture (nobody): when unshare fails, the bridge starts after the pid instead and " +
    "capture still works",
  ignore: !unprivileged,
  async fn() {
    await using allowed = startFixture(80, httpServe("hello-late-bridge"));
    // A stand-in that passes the preflight's check (it names both options) and fails, leaving
    // a mark that the early path was tried. nobody can run it but not change it.
    const dir = await Deno.makeTempDir({ prefix: "sandbox_unshare_" });
    try {
      await Deno.chmod(dir, 0o755);
      const marks = `${dir}/marks`;
      await Deno.mkdir(marks);
      await Deno.chmod(marks, 0o777);
      await Deno.writeTextFile(
        `${dir}/unshare`,
        `#!/bin/sh\n# --map-current-user --keep-caps\ntouch ${marks}/tried\n` +
          `echo "unshare: unrecognized option" >&2\nexit 1\n`,
        { mode: 0o755 },
      );
      const { exitCode, out, err, calls } = await runAs("nobody", {
        allow: ["allowed.test"],
        table: { "allowed.test": allowed.address },
        script: [
          `echo "curl=$(curl -sS -m 10 --noproxy '*' http://allowed.test/)"`,
          `echo "getent=$(getent hosts any.name.example)"`,
        ].join("\n"),
        env: { SANDBOX_UNSHARE: `${dir}/unshare` },
      });
      assert.equal(exitCode, 0, err);
      assert.ok(await Deno.stat(`${marks}/tried`), "the early path was not tried");
      assert.equal(out.get("curl"), "hello-late-bridge", err);
      assert.match(out.get("getent") ?? "", /^198\.1[89]\.\d+\.\d+\s+any\.name\.example$/);
      assert.deepEqual(calls, ["allowed.test"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
