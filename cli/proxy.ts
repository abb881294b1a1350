/**
 * `sandbox proxy`: the egress proxy alone, in the foreground. Prints one
 * JSON line on stdout once listening, logs to stderr, reloads the policy
 * when a config file changes or on SIGHUP, and stops cleanly on SIGINT or
 * SIGTERM (exit 0).
 *
 * @module
 */
import { otlpFromEnv } from "../proxy/otlp.ts";
import { type OptionSpecs, parseCommandArgs, SHARED_OPTIONS, type SharedValues } from "./args.ts";
import { alwaysFileFor, openAskPrompter } from "../run/ask.ts";
import { UsageError } from "../errors.ts";
import { loadEffectiveConfig } from "../profiles/load.ts";
import type { EffectiveConfig } from "../profiles/types.ts";
import { prepareMitm } from "../proxy/mitm.ts";
import { watchConfig } from "../proxy/reload.ts";
import { createResolver, parseResolveFlags } from "../proxy/resolver.ts";
import { type ListenAddress, startProxy } from "../proxy/server.ts";
import { formatAuthority, upstreamProxyFromEnv } from "../proxy/upstream.ts";

/** Help text for `sandbox help proxy`. */
export const PROXY_HELP = `Usage: sandbox proxy [OPTIONS]

Run the egress proxy alone, in the foreground, until SIGINT or SIGTERM.
Once listening it prints exactly one JSON line on stdout, e.g.
  {"http":"127.0.0.1:41234","socks5":"127.0.0.1:41235"}
(plus "unix" with --listen-unix). Logs go to stderr. The policy is reloaded
when a config file changes or on SIGHUP; a broken config keeps the old policy.

Options:
  --http-port N            HTTP proxy port (0 = any free port; default: network.proxy_url, else 0)
  --socks-port N           SOCKS5 port (0 = any free port; default: network.socks_url, else 0)
  --listen-unix PATH       Also serve both protocols on this unix socket
  --config FILE            A TOML config file (repeatable)
  --profile NAME           Permissions profile to use
  --allow PATTERN          Allow a domain pattern (repeatable)
  --deny PATTERN           Deny a domain pattern (repeatable)
  --preset NAME            Add a named allowlist (repeatable)
  --mode full|limited      Method policy
  --mitm                   Terminate TLS in limited mode so methods can be checked
  --allow-local-binding    Let the policy reach loopback and private addresses
  --allow-unix-socket PATH Allow a unix socket (repeatable)
  --resolve HOST=ADDR      Resolve HOST to ADDR instead of asking DNS (repeatable)
  --log FILE               Append every decision as one JSON line
  --ca-dir DIR             Where the MITM CA lives (with --mode limited --mitm; see "sandbox init")
  --ask                    Ask on the terminal when a host is not in the allowlist

The launcher's own HTTPS_PROXY / HTTP_PROXY / NO_PROXY (read once at start)
make allowed connections go out through that upstream proxy.

Example:
  sandbox proxy --allow registry.example --log /tmp/decisions.jsonl`;

const PROXY_OPTIONS = {
  ...SHARED_OPTIONS,
  "http-port": { type: "string" },
  "socks-port": { type: "string" },
  "listen-unix": { type: "string" },
  ask: { type: "boolean" },
} as const satisfies OptionSpecs;

function portFlag(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value);
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) > 65535) {
    throw new UsageError(`Invalid ${flag} "${text}": expected a port from 0 to 65535`, {
      command: "proxy",
    });
  }
  return Number(text);
}

function hostOf(url: string | null): string {
  if (url === null) return "127.0.0.1";
  try {
    return new URL(url.includes("://") ? url : `http://${url}`).hostname.replace(/^\[|\]$/g, "");
  } catch {
    return "127.0.0.1";
  }
}

function listenFor(port: number | undefined, url: string | null): ListenAddress | undefined {
  if (port !== undefined) return { hostname: hostOf(url), port };
  return url === null ? { hostname: "127.0.0.1", port: 0 } : undefined;
}

function sharedFlags(values: Record<string, unknown>): SharedValues {
  const shared: Record<string, unknown> = {};
  for (const key of Object.keys(SHARED_OPTIONS)) {
    if (values[key] !== undefined) shared[key] = values[key];
  }
  return shared as SharedValues;
}

function waitForStopSignal(): { promise: Promise<string>; dispose(): void } {
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  let resolve!: (signal: string) => void;
  const promise = new Promise<string>((r) => resolve = r);
  const handlers = signals.map((signal) => {
    const handler = () => resolve(signal);
    Deno.addSignalListener(signal, handler);
    return [signal, handler] as const;
  });
  return {
    promise,
    dispose() {
      for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
    },
  };
}

/** Runs `sandbox proxy`; returns the exit code. */
export async function proxyCommand(args: string[]): Promise<number> {
  const { values } = parseCommandArgs("proxy", args, PROXY_OPTIONS);
  const flags = sharedFlags(values);
  const httpPort = portFlag(values["http-port"], "--http-port");
  const socksPort = portFlag(values["socks-port"], "--socks-port");
  const unixPath = typeof values["listen-unix"] === "string" ? values["listen-unix"] : null;
  const resolver = createResolver({ overrides: parseResolveFlags(flags.resolve) });
  const env = Deno.env.toObject();
  const config: EffectiveConfig = await loadEffectiveConfig(flags, { env });
  for (const notice of config.notices) console.error(`sandbox: ${notice}`);
  const upstreamProxy = upstreamProxyFromEnv(env);
  const network = config.network;

  // Limited mode over HTTPS needs the CA; without --mitm such CONNECTs are refused (mitm_required).
  const mitm = network.mitm && network.mode === "limited"
    ? (await prepareMitm(config, { caDir: flags["ca-dir"], env })).handler
    : null;
  await using prompter = network.ask || values.ask === true
    ? await openAskPrompter({
      env,
      command: ["sandbox", "proxy"],
      alwaysFile: alwaysFileFor(flags.config, env),
      profile: config.profileName,
    })
    : null;

  const stop = waitForStopSignal();
  try {
    await using proxy = await startProxy({
      mitm,
      askOnMiss: prompter === null ? undefined : (miss) => prompter.askOnMiss(miss),
      config,
      resolver,
      http: listenFor(httpPort, network.proxyUrl),
      socks: network.enableSocks5 ? listenFor(socksPort, network.socksUrl) : null,
      unixPath,
      logFile: flags.log ?? null,
      otlp: otlpFromEnv(Deno.env.toObject()),
      upstreamProxy,
    });
    const ready: Record<string, string> = {};
    if (proxy.http !== null) ready.http = formatAuthority(proxy.http.hostname, proxy.http.port);
    if (proxy.socks !== null) {
      ready.socks5 = formatAuthority(proxy.socks.hostname, proxy.socks.port);
    }
    if (proxy.unixPath !== null) ready.unix = proxy.unixPath;
    await writeStdout(JSON.stringify(ready) + "\n");
    if (upstreamProxy !== null) {
      const via = upstreamProxy.https?.display ?? upstreamProxy.http?.display;
      console.error(`sandbox: Allowed connections go out through the upstream proxy ${via}`);
    }
    await using _watch = watchConfig({
      flags,
      files: config.files,
      apply: (next) => proxy.updateConfig(next),
    });
    const signal = await stop.promise;
    console.error(`sandbox: ${signal} received, closing the proxy`);
  } finally {
    stop.dispose();
  }
  return 0;
}

async function writeStdout(text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  while (offset < bytes.length) offset += await Deno.stdout.write(bytes.subarray(offset));
}
