/**
 * `sandbox run` end to end, network: real bwrap, the real proxy and bridge,
 * loopback servers reached through `--resolve` names.
 */
import assert from "node:assert/strict";
import { hasProgram, parseLines, runDirs, sandboxCli, startHttpServer } from "./run_helpers.ts";

const PY = "/usr/bin/python3";
const ignore = !hasProgram("/usr/bin/bwrap") || !hasProgram("/usr/bin/curl") || !hasProgram(PY);

/** Raw client checks run inside the sandbox; each prints `name=result`. */
const PROBE = `
import socket, sys
port = int(sys.argv[1]); port6 = int(sys.argv[2])
def tcp(name, family, addr):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect(addr); s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n"); data = s.recv(100)
        print(f"{name}=connected:{data[:12]!r}")
    except OSError as e:
        print(f"{name}=error:{e.__class__.__name__}")
    finally:
        s.close()
tcp("py_v4", socket.AF_INET, ("127.0.0.1", port))
tcp("py_v6", socket.AF_INET6, ("::1", port6))
tcp("py_v4_other", socket.AF_INET, ("127.0.0.2", port))
# SOCKS5 by hand: the denied host must get reply code 0x02
s = socket.create_connection(("127.0.0.1", 1080), timeout=5)
s.sendall(b"\\x05\\x01\\x00"); s.recv(2)
host = b"denied.test"
s.sendall(b"\\x05\\x01\\x00\\x03" + bytes([len(host)]) + host + port.to_bytes(2, "big"))
print(f"socks_denied_reply={s.recv(10)[1]}")
s.close()
`;

const NODE_PROBE = `
const net = require("net");
const s = net.connect(Number(process.argv[1]), "127.0.0.1");
s.on("connect", () => { console.log("node_v4=connected"); s.destroy(); });
s.on("error", (e) => console.log("node_v4=error:" + e.code));
`;

Deno.test({
  name:
    "sandbox run: allowed host via HTTP proxy, CONNECT and SOCKS5h; denied 403 / 0x02; direct sockets fail",
  ignore,
  async fn() {
    const before = runDirs();
    await using server = startHttpServer("hello-from-allowed");
    await using server6 = startHttpServer("hello-v6", "::1");
    const p = server.port;
    // The servers answer on the host: what fails inside fails because of the sandbox.
    const direct = await fetch(`http://127.0.0.1:${p}/`);
    assert.equal(await direct.text(), "hello-from-allowed");
    const script = [
      `echo "http=$(curl -s -m 10 http://allowed.test:${p}/)"`,
      `echo "connect=$(curl -s -m 10 -p http://allowed.test:${p}/)"`,
      `echo "socks=$(env -u http_proxy -u HTTP_PROXY curl -s -m 10 http://allowed.test:${p}/)"`,
      `echo "denied=$(curl -s -m 10 -o /dev/null -w '%{http_code}' http://denied.test:${p}/)"`,
      `curl -s -m 5 --noproxy '*' http://127.0.0.1:${p}/ >/dev/null; echo "noproxy=$?"`,
      `curl -s -m 5 --noproxy '*' http://allowed.test:${p}/ >/dev/null; echo "noproxy_name=$?"`,
      `echo "no_proxy=[$NO_PROXY][$no_proxy]"`,
      `${PY} -c "$0" ${p} ${server6.port}`,
      `node -e "$1" ${p}`,
    ].join("\n");
    const result = await sandboxCli([
      "run",
      "--resolve",
      "allowed.test=127.0.0.1",
      "--resolve",
      "denied.test=127.0.0.1",
      "--allow",
      "allowed.test",
      "--",
      "sh",
      "-c",
      script,
      PROBE,
      NODE_PROBE,
    ]);
    const out = parseLines(result.stdout);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(out.get("http"), "hello-from-allowed");
    assert.equal(out.get("connect"), "hello-from-allowed");
    assert.equal(out.get("socks"), "hello-from-allowed");
    assert.equal(out.get("denied"), "403");
    assert.equal(out.get("socks_denied_reply"), "2");
    assert.notEqual(out.get("noproxy"), "0");
    assert.notEqual(out.get("noproxy_name"), "0");
    const loopback = "localhost,.localhost,127.0.0.1,127.0.0.0/8,::1";
    assert.equal(out.get("no_proxy"), `[${loopback}][${loopback}]`);
    assert.match(out.get("py_v4") ?? "", /^error:/);
    assert.match(out.get("py_v6") ?? "", /^error:/);
    assert.match(out.get("py_v4_other") ?? "", /^error:/);
    if (hasProgram("/usr/bin/node")) assert.match(out.get("node_v4") ?? "", /^error:/);
    // The blocked-host summary names the denied host.
    assert.match(result.stderr, /denied\.test/);
    // The launcher stops the bridge itself at the end: that is not a bridge that died.
    assert.doesNotMatch(result.stderr, /network bridge/);
    // Nothing of this run's is left (other launchers on the machine may add or sweep their own).
    assert.deepEqual(runDirs().filter((dir) => !before.includes(dir)), []);
  },
});

Deno.test({
  name: "sandbox run: an allow command gets no network at all and no proxy variables",
  ignore,
  async fn() {
    await using server = startHttpServer("unreachable");
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/c.toml`, `[execpolicy]\n"sh *" = "allow"\n`);
      const result = await sandboxCli([
        "run",
        "--config",
        `${dir}/c.toml`,
        "--allow",
        "allowed.test",
        "--resolve",
        "allowed.test=127.0.0.1",
        "--",
        "sh",
        "-c",
        `echo "proxy=[$HTTP_PROXY]"; curl -s -m 5 http://allowed.test:${server.port}/ >/dev/null; echo "curl=$?"`,
      ]);
      const out = parseLines(result.stdout);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(out.get("proxy"), "[]");
      assert.notEqual(out.get("curl"), "0");
      assert.equal(server.accepted(), 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
