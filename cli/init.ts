/**
 * `sandbox init [--ca-dir DIR] [--json]`: creates the local CA that
 * limited-mode MITM signs leaf certificates with. Idempotent: an existing CA
 * is loaded, checked and reported, never replaced.
 *
 * @module
 */
import { parseCommandArgs, SHARED_OPTIONS } from "./args.ts";
import { UsageError } from "../errors.ts";
import { caFilesIn, defaultCaDir, initCa } from "../proxy/ca.ts";

/** Help text for `sandbox help init`. */
export const INIT_HELP = `Usage: sandbox init [OPTIONS]

Create the local certificate authority (CA) used to inspect HTTPS in limited
mode (--mode limited --mitm). Runs once: if the CA exists it is checked and
left untouched. The key is written with mode 0600 and must stay that way.

Options:
  --ca-dir DIR   Where the CA lives (default: $XDG_CONFIG_HOME/sandbox/ca,
                 else ~/.config/sandbox/ca)
  --json         Print the result as JSON on stdout
  -h, --help     Show this help

Files:
  DIR/ca.pem       the CA certificate (0644): what sandboxed commands trust
  DIR/ca-key.pem   the CA private key (0600): anyone who reads it can
                   impersonate any HTTPS site to you; keep it private

Examples:
  sandbox init
  sandbox init --ca-dir ./ci-ca
  sandbox run --mode limited --mitm --allow api.example.com -- curl https://api.example.com/`;

const INIT_OPTIONS = {
  "ca-dir": SHARED_OPTIONS["ca-dir"],
  json: SHARED_OPTIONS.json,
  help: SHARED_OPTIONS.help,
} as const;

/** Where {@linkcode initCommand} writes; defaults to the process's stdout. */
export interface InitIo {
  /** Receives text meant for stdout. */
  stdout(text: string): void;
}

const encoder = new TextEncoder();

/**
 * Runs `sandbox init`; returns the exit code (0 whether the CA was created or
 * already there). Problems with an existing CA (a key readable by others, a
 * symlink, a half-written CA) are a `SandboxError` with code `ca_error`.
 *
 * @example
 * ```ts
 * const code = await initCommand(["--ca-dir", "/tmp/ca"]);
 * ```
 */
export async function initCommand(
  args: string[],
  io: InitIo = { stdout: (text) => void Deno.stdout.writeSync(encoder.encode(text)) },
): Promise<number> {
  const { values } = parseCommandArgs("init", args, INIT_OPTIONS);
  if (values.help === true) {
    io.stdout(INIT_HELP + "\n");
    return 0;
  }
  const flagDir = values["ca-dir"] as string | undefined;
  if (flagDir !== undefined && flagDir.trim() === "") {
    throw new UsageError('Invalid value for "--ca-dir": expected a directory path, got ""', {
      command: "init",
    });
  }
  const dir = flagDir === undefined ? defaultCaDir() : absolute(flagDir);
  const { created, ca } = await initCa(dir);
  const files = caFilesIn(dir);
  if (values.json === true) {
    io.stdout(
      JSON.stringify({
        created,
        dir,
        cert: files.cert,
        key: files.key,
        fingerprint256: ca.fingerprint256,
        notAfter: ca.notAfter.toISOString(),
      }) + "\n",
    );
    return 0;
  }
  const head = created
    ? `Created the MITM CA in "${dir}"`
    : `The MITM CA in "${dir}" already exists; left untouched`;
  io.stdout(
    `${head}
  certificate: ${files.cert}
  key:         ${files.key} (mode 0600; keep it private)
  SHA-256:     ${ca.fingerprint256}
  expires:     ${ca.notAfter.toISOString()}
Use it with: sandbox run --mode limited --mitm …
`,
  );
  return 0;
}

function absolute(path: string): string {
  return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
}
