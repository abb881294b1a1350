#!/usr/bin/env bash
# The composite action's step (action.yml): turns the inputs, passed as
# SANDBOX_* variables (never pasted into a script), into one argv for
# `sandbox run`. Kept in a file so that it can be tested without a runner.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
args=(run)
while IFS= read -r file; do
  [ -n "$file" ] && args+=(--config "$file")
done <<<"${SANDBOX_CONFIG:-}"
[ -n "${SANDBOX_PROFILE:-}" ] && args+=(--profile "$SANDBOX_PROFILE")
for host in ${SANDBOX_ALLOW:-}; do args+=(--allow "$host"); done
for preset in ${SANDBOX_PRESET:-}; do args+=(--preset "$preset"); done
case "${SANDBOX_ENFORCEMENT:-enforce}" in
  enforce) ;;
  report) args+=(--report) ;;
  *) echo "sandbox: Invalid input enforcement: \"${SANDBOX_ENFORCEMENT}\": expected \"enforce\" or \"report\"" >&2; exit 2 ;;
esac
case "${SANDBOX_FAIL_ON_BLOCK:-false}" in
  true) args+=(--fail-on-block) ;;
  false | "") ;;
  *) echo "sandbox: Invalid input fail-on-block: \"${SANDBOX_FAIL_ON_BLOCK}\": expected \"true\" or \"false\"" >&2; exit 2 ;;
esac
[ -n "${SANDBOX_LOG:-}" ] && args+=(--log "$SANDBOX_LOG")
[ -n "${SANDBOX_RECEIPT:-}" ] && args+=(--receipt "$SANDBOX_RECEIPT")
if [ -z "${SANDBOX_RUN:-}" ]; then
  echo 'sandbox: Missing input "run": the command to run' >&2
  exit 2
fi
args+=(-- bash -c "$SANDBOX_RUN")
unset SANDBOX_RUN SANDBOX_CONFIG SANDBOX_PROFILE SANDBOX_ALLOW SANDBOX_PRESET SANDBOX_ENFORCEMENT \
  SANDBOX_FAIL_ON_BLOCK SANDBOX_LOG SANDBOX_RECEIPT
deno=(npx -y "deno@${DENO_VERSION:-2.9.6}")
# A Deno already at hand (tests; runners that set one up) saves the npx step.
[ -n "${SANDBOX_DENO:-}" ] && deno=("$SANDBOX_DENO")
exec "${deno[@]}" run -A --no-prompt --quiet --config "$here/deno.json" "$here/main.ts" "${args[@]}"
