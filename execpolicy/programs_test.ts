import assert from "node:assert/strict";
import { decideCommand } from "./decide.ts";
import { parseGitConfig } from "./git_config.ts";
import type { ExecDecision, ExecPolicyConfig, ExecRule } from "./types.ts";

function rule(pattern: string, decision: ExecDecision): ExecRule {
  return {
    pattern,
    decision,
    justification: null,
    match: [],
    notMatch: [],
    source: "user:/t.toml",
  };
}

const TABLE: ExecPolicyConfig = {
  default: "allow",
  rules: [
    rule("git push *", "allow-network"),
    rule("git fetch *", "allow-network"),
    rule("git *", "allow"),
    rule("git push --force *", "deny"),
    rule("npm ci", "allow-network"),
    rule("npm publish *", "deny"),
    rule("npm *", "allow"),
    rule("pnpm install *", "allow-network"),
    rule("yarn install *", "allow-network"),
    rule("curl *", "deny"),
  ],
};

interface Setup {
  env?: Record<string, string>;
  cwd?: string | null;
  files?: Record<string, string>;
}

function decide(argv: string[], setup: Setup = {}) {
  const files = setup.files ?? {};
  return decideCommand(TABLE, argv, {
    networkEnabled: true,
    env: setup.env ?? {},
    cwd: setup.cwd ?? null,
    readTextFile: (path) => files[path] ?? null,
  });
}

Deno.test("decideCommand() looks past git's global options to its subcommand", () => {
  const cases: [string[], ExecDecision][] = [
    [["git", "-C", "repo", "push"], "allow-network"],
    [["git", "-c", "user.name=x", "fetch", "origin"], "allow-network"],
    [["git", "--git-dir=/r/.git", "--work-tree", "/r", "push", "origin"], "allow-network"],
    [["git", "--no-pager", "-P", "--bare", "fetch"], "allow-network"],
    [["git", "-C", "a", "-C", "b", "push", "--force", "origin"], "deny"],
    [["git", "-C", "repo", "status"], "allow"],
    [["git", "--frobnicate", "push"], "allow"], // git refuses an unknown option: nothing runs
    [["/usr/bin/git", "-C", "x", "push"], "allow-network"],
  ];
  for (const [argv, expected] of cases) {
    assert.equal(decide(argv).decision, expected, argv.join(" "));
  }
  assert.deepEqual(
    decide(["git", "-C", "repo", "push"]).commands[0].decidedBy.map((m) => m.pattern),
    ["git push *"],
  );
});

Deno.test("decideCommand() decides a git alias as what it expands to", () => {
  const cases: [string[], Setup, ExecDecision][] = [
    [["git", "-c", "alias.p=push", "p"], {}, "allow-network"],
    [["git", "-c", "alias.P=push --force", "p", "origin"], {}, "deny"],
    [["git", "-c", "alias.p=!curl -s x", "p"], {}, "deny"],
    [
      ["git", "--config-env=alias.p=PUSHALIAS", "p"],
      { env: { PUSHALIAS: "push" } },
      "allow-network",
    ],
    [["git", "p"], {
      env: { GIT_CONFIG_COUNT: "1", GIT_CONFIG_KEY_0: "alias.p", GIT_CONFIG_VALUE_0: "fetch" },
    }, "allow-network"],
    [["git", "p"], { env: { GIT_CONFIG_PARAMETERS: "'alias.p'='push'" } }, "allow-network"],
    [["git", "p"], {
      env: { HOME: "/h" },
      files: { "/h/.gitconfig": "[alias]\n\tp = push # comment\n" },
    }, "allow-network"],
    [["git", "-C", "repo", "p"], {
      cwd: "/w",
      files: {
        "/w/repo/.git/config": "[core]\n\tbare = false\n[include]\n\tpath = extra\n",
        "/w/repo/.git/extra": '[alias]\n  p = "!sh -c \\"curl x\\""\n',
      },
    }, "deny"],
    // An alias cannot hide a git command: git ignores it.
    [["git", "-c", "alias.status=push", "status"], {}, "allow"],
    // In a script, VAR=value prefixes count.
    [
      ["sh", "-c", "GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=alias.q GIT_CONFIG_VALUE_0=push git q"],
      {},
      "allow-network",
    ],
    [
      [
        "env",
        "GIT_CONFIG_COUNT=1",
        "GIT_CONFIG_KEY_0=alias.q",
        "GIT_CONFIG_VALUE_0=push",
        "git",
        "q",
      ],
      {},
      "allow-network",
    ],
    // Unknown alias: decided as written.
    [["git", "zz"], {}, "allow"],
  ];
  for (const [argv, setup, expected] of cases) {
    assert.equal(decide(argv, setup).decision, expected, argv.join(" "));
  }
  const verdict = decide(["git", "-c", "alias.p=push", "p"]);
  assert.deepEqual(verdict.commands[0].argv, ["git", "-c", "alias.p=push", "push"]);
  assert.match(verdict.commands[0].note ?? "", /"git p" is an alias/);
  // An alias to itself (git refuses it) does not loop forever: it ends as an opaque command.
  const loop = decide(["git", "-c", "alias.p=p", "p"]);
  assert.equal(loop.commands.at(-1)?.basis, "opaque");
});

Deno.test("decideCommand() looks past npm, pnpm and yarn options before the subcommand", () => {
  const cases: [string[], ExecDecision][] = [
    [["npm", "--prefix", "app", "ci"], "allow-network"],
    [["npm", "-C", "app", "--silent", "ci"], "allow-network"],
    [["npm", "--registry=http://r.example", "ci"], "allow-network"],
    [["npm", "--weird", "publish"], "deny"], // an unknown option is read both ways
    [["npm", "-w", "pkg", "publish"], "deny"],
    [["npm", "--prefix", "ci", "test"], "allow"], // "ci" is --prefix's value
    [["pnpm", "-C", "app", "install"], "allow-network"],
    [["pnpm", "--filter", "web", "install", "--frozen-lockfile"], "allow-network"],
    [["yarn", "--cwd", "app", "install"], "allow-network"],
  ];
  for (const [argv, expected] of cases) {
    assert.equal(decide(argv).decision, expected, argv.join(" "));
  }
});

Deno.test("parseGitConfig() reads sections, subsections, quotes, escapes and comments", () => {
  assert.deepEqual(
    parseGitConfig(
      '[Alias]\n  Co = checkout ; c\n  st = "status -s # kept"\n[includeIf "gitdir:~/w/"]\n  path = w.inc\n[x]\n  bare\n',
    ),
    [
      ["alias", "co", "checkout"],
      ["alias", "st", "status -s # kept"],
      ["includeif.gitdir:~/w/", "path", "w.inc"],
      ["x", "bare", null],
    ],
  );
});
