import assert from "node:assert/strict";
import {
  aptSourceHosts,
  discoverPresetHosts,
  registryFromNpmrc,
  registryUrlHost,
  trustedPath,
} from "./preset_hosts.ts";

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "preset_hosts_test_" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

Deno.test("registryUrlHost() takes the host of http(s) URLs only", () => {
  assert.equal(registryUrlHost("https://Mirror.Example:8443/npm/\n"), "mirror.example");
  assert.equal(registryUrlHost("http://[::1]:4873/"), "::1");
  assert.equal(registryUrlHost("file:///srv/registry"), null);
  assert.equal(registryUrlHost("not a url"), null);
});

Deno.test("registryFromNpmrc() reads the last unscoped registry= line and ignores scoped ones", () => {
  const text = [
    "# comment",
    "@corp:registry=https://corp.example/",
    "registry=https://first.example/",
    "; registry=https://commented.example/",
    'registry = "https://second.example/"',
  ].join("\n");
  assert.equal(registryFromNpmrc(text), "https://second.example/");
  assert.equal(registryFromNpmrc("fund=false\n"), null);
  assert.equal(registryFromNpmrc(null), null);
});

Deno.test("discoverPresetHosts() prefers npm_config_registry, then ~/.npmrc", async () => {
  await using home = await tempDir();
  await Deno.writeTextFile(`${home.path}/.npmrc`, "registry=https://rc.example/\n");
  const fromEnv = await discoverPresetHosts(["npm-registry"], {
    env: { HOME: home.path, npm_config_registry: "https://env.example/" },
    askNpm: false,
  });
  assert.deepEqual(fromEnv.hosts["npm-registry"], ["env.example"]);
  const fromRc = await discoverPresetHosts(["npm-registry"], {
    env: { HOME: home.path },
    askNpm: false,
  });
  assert.deepEqual(fromRc.hosts["npm-registry"], ["rc.example"]);
  assert.deepEqual(fromRc.notes, []);
});

Deno.test("discoverPresetHosts() never reads a .npmrc in the working directory", async () => {
  await using home = await tempDir();
  await using project = await tempDir();
  await Deno.writeTextFile(`${project.path}/.npmrc`, "registry=https://planted.example/\n");
  const previous = Deno.cwd();
  Deno.chdir(project.path);
  try {
    const found = await discoverPresetHosts(["npm-registry"], {
      env: { HOME: home.path, PATH: Deno.env.get("PATH") ?? "" },
    });
    assert.ok(!found.hosts["npm-registry"].includes("planted.example"));
  } finally {
    Deno.chdir(previous);
  }
});

Deno.test("discoverPresetHosts() asks npm when nothing else says, and agrees with npm", async () => {
  await using home = await tempDir();
  const env = { HOME: home.path, PATH: Deno.env.get("PATH") ?? "" };
  const expected = await new Deno.Command("npm", {
    args: ["config", "get", "registry"],
    cwd: home.path,
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "null",
  }).output().then((o) => o.success ? registryUrlHost(new TextDecoder().decode(o.stdout)) : null)
    .catch(() => null);
  const found = await discoverPresetHosts(["npm-registry"], { env });
  if (expected === null) {
    assert.deepEqual(found.hosts["npm-registry"], []);
    assert.equal(found.notes.length, 1);
  } else {
    assert.deepEqual(found.hosts["npm-registry"], [expected]);
  }
});

Deno.test("discoverPresetHosts() says so when the npm registry cannot be found", async () => {
  await using home = await tempDir();
  const found = await discoverPresetHosts(["npm-registry"], {
    env: { HOME: home.path, PATH: home.path },
  });
  assert.deepEqual(found.hosts["npm-registry"], []);
  assert.match(found.notes[0], /npm registry is unknown/);
});

Deno.test("aptSourceHosts() reads one-line and deb822 sources, skipping disabled ones and other files", async () => {
  await using apt = await tempDir();
  await Deno.mkdir(`${apt.path}/sources.list.d`);
  await Deno.writeTextFile(
    `${apt.path}/sources.list`,
    "deb http://archive.example/debian bookworm main\n# deb http://commented.example/ x y\n" +
      "deb [arch=amd64 signed-by=/k.gpg] https://signed.example/apt stable main\n",
  );
  await Deno.writeTextFile(
    `${apt.path}/sources.list.d/main.sources`,
    "Types: deb\nURIs: http://mirror-a.example/debian http://mirror-b.example/debian\nSuites: x\n\n" +
      "Types: deb\nEnabled: no\nURIs: http://disabled.example/\nSuites: x\n",
  );
  await Deno.writeTextFile(
    `${apt.path}/sources.list.d/old.list.disabled`,
    "deb http://ignored.example/ x y\n",
  );
  assert.deepEqual(aptSourceHosts(apt.path), [
    "archive.example",
    "mirror-a.example",
    "mirror-b.example",
    "signed.example",
  ]);
  assert.deepEqual(aptSourceHosts(`${apt.path}/missing`), []);
});

Deno.test("trustedPath() drops relative PATH entries and those a sandboxed command can write", () => {
  assert.deepEqual(
    trustedPath("node_modules/.bin::./bin:/w/node_modules/.bin:/w:/wx/bin:/usr/bin", ["/w"]),
    ["/wx/bin", "/usr/bin"],
  );
  assert.deepEqual(trustedPath("/usr/bin:/bin", ["/"]), []);
});
