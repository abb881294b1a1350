/**
 * Under GitHub Actions, workflow commands (`::error::`, `::add-mask::`, …)
 * are read from a step's stdout and stderr alike. A sandboxed command must
 * not be able to print ones that pass as the launcher's, so its output is
 * fenced: before it starts, `::stop-commands::TOKEN` goes to stderr (the
 * runner then ignores every workflow command, on both streams, until it sees
 * `::TOKEN::`), and the launcher resumes after the command ended, before it
 * writes its own annotations. TOKEN is random per run and never reaches the
 * command (not in its environment, not in a file it can read).
 *
 * The runner reads stdout and stderr separately; a line the command wrote
 * just before it exited could in principle be read after the resume line on
 * the other stream, so the launcher waits briefly before resuming.
 *
 * @module
 */

/** How long to let the runner read the command's last lines before resuming. */
export const FENCE_SETTLE_MS = 200;

/** An open fence; {@linkcode WorkflowFence.end} it on every path. */
export interface WorkflowFence {
  /** The stop token (for tests; never give it to the command). */
  readonly token: string;
  /** Resumes workflow commands (once; later calls do nothing). */
  end(): Promise<void>;
}

/** Options for {@linkcode openWorkflowFence}. */
export interface OpenWorkflowFenceOptions {
  /** Receives stderr text; writes to `Deno.stderr` unless set. */
  readonly stderr?: (text: string) => void;
  /** Wait before resuming, in milliseconds; {@linkcode FENCE_SETTLE_MS} unless set. */
  readonly settleMs?: number;
}

/**
 * Starts fencing when `env.GITHUB_ACTIONS` is `"true"`; returns null
 * elsewhere (or when the user lets the command's workflow commands through).
 */
export function openWorkflowFence(
  env: Readonly<Record<string, string | undefined>>,
  options: OpenWorkflowFenceOptions = {},
): WorkflowFence | null {
  if (env.GITHUB_ACTIONS !== "true") return null;
  const write = options.stderr ?? ((text: string) => {
    const bytes = new TextEncoder().encode(text);
    let done = 0;
    while (done < bytes.length) done += Deno.stderr.writeSync(bytes.subarray(done));
  });
  const random = crypto.getRandomValues(new Uint8Array(16));
  const token = `sandbox-${Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  write(`::stop-commands::${token}\n`);
  let ended = false;
  return {
    token,
    async end() {
      if (ended) return;
      ended = true;
      const settle = options.settleMs ?? FENCE_SETTLE_MS;
      if (settle > 0) await new Promise((resolve) => setTimeout(resolve, settle));
      write(`::${token}::\n`);
    },
  };
}
