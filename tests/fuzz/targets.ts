/**
 * Every fuzz target, in the order `deno task fuzz` runs them.
 *
 * @module
 */
import type { FuzzTarget } from "./harness.ts";
import { httpRequestTarget, httpResponseTarget } from "./http_parser_target.ts";
import { profileConfigTarget } from "./profile_target.ts";
import { execDecideTarget, shellSplitTarget } from "./execpolicy_target.ts";
import { httpWireTarget, socks5WireTarget } from "./wire_targets.ts";
import {
  addressSpellingTarget,
  domainPatternTarget,
  hostNormalizeTarget,
} from "./policy_targets.ts";

/** All fuzz targets. */
export const FUZZ_TARGETS: readonly FuzzTarget[] = Object.freeze([
  httpRequestTarget,
  httpResponseTarget,
  hostNormalizeTarget,
  addressSpellingTarget,
  domainPatternTarget,
  profileConfigTarget,
  shellSplitTarget,
  execDecideTarget,
  socks5WireTarget,
  httpWireTarget,
]);
