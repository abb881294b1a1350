/**
 * A real shell grammar for the scripts the hand-written splitter
 * (`./script.ts`) refuses: tree-sitter-bash (WASM, through web-tree-sitter),
 * loaded only when such a script must be split. It sees into compound
 * commands (`if`/`for`/`while`/`until`/`case` bodies, `{ …; }`, `( … )`,
 * function bodies), command and process substitutions whose inner commands
 * are themselves visible, arithmetic, and here-documents: a quoted one is
 * data, an unquoted one's substitutions are commands.
 *
 * Each simple command it finds is rebuilt as text with every substitution
 * replaced by a placeholder variable, and handed to the hand-written
 * splitter, so the word rules (quotes, run-time words, refused builtins
 * such as `eval` and `source`) stay in one place. Anything else stays
 * opaque, and so does every script the grammar reports an error in (fail
 * closed). A single-quoted string holding `$(` or a backquote is refused
 * too: bash can evaluate it as arithmetic.
 *
 * @module
 */
import { bundledFile } from "../self.ts";
import { parseScript, type ScriptParse, type ScriptWord } from "./script.ts";

/** The grammar's WASM, from the project root (embedded by `deno compile`). */
export const BASH_WASM = "node_modules/tree-sitter-bash/tree-sitter-bash.wasm";

/** A loaded parser: splits a script the hand-written splitter refused. */
export interface ShellParser {
  /** Splits `script` into simple commands, or says why it stays opaque. */
  split(script: string): ScriptParse;
}

// The subset of web-tree-sitter's node API this module uses.
interface TsNode {
  readonly type: string;
  readonly text: string;
  readonly startIndex: number;
  readonly endIndex: number;
  readonly namedChildren: readonly (TsNode | null)[];
  readonly children: readonly (TsNode | null)[];
  readonly hasError: boolean;
  readonly isMissing: boolean;
}

/**
 * Loads tree-sitter-bash; null (with the reason) when it cannot be loaded
 * here, in which case scripts the hand-written splitter refuses stay opaque.
 *
 * @example
 * ```ts
 * const parser = await loadShellParser();
 * if ("split" in parser) parser.split("for f in *.js; do node \"$f\"; done");
 * ```
 */
export async function loadShellParser(): Promise<ShellParser | { error: string }> {
  try {
    const { Parser, Language } = await import("web-tree-sitter");
    await Parser.init();
    const wasm = await Deno.readFile(bundledFile(BASH_WASM));
    const bash = await Language.load(wasm);
    const parser = new Parser();
    parser.setLanguage(bash);
    return {
      split(script: string): ScriptParse {
        const tree = parser.parse(script);
        if (tree === null) return { kind: "opaque", reason: "the shell grammar gave no tree" };
        try {
          return splitTree(tree.rootNode as unknown as TsNode, script);
        } finally {
          tree.delete();
        }
      },
    };
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

class Opaque extends Error {}

/** Nodes whose named children are statements to look into. */
const CONTAINERS = new Set([
  "program",
  "list",
  "pipeline",
  "compound_statement",
  "subshell",
  "do_group",
  "if_statement",
  "elif_clause",
  "else_clause",
  "while_statement",
  "case_statement",
  "case_item",
  "negated_command",
  "redirected_statement",
]);

/** Nodes that are substituted by a value: their commands run, their value is unknown. */
const SUBSTITUTIONS = new Set(["command_substitution", "process_substitution"]);

/** Exported for tests: splits a parsed tree (see the module doc). */
export function splitTree(root: TsNode, script: string): ScriptParse {
  if (root.hasError) return { kind: "opaque", reason: "the shell grammar reports a syntax error" };
  const commands: ScriptWord[][] = [];
  try {
    statement(root, script, commands);
  } catch (error) {
    if (error instanceof Opaque) return { kind: "opaque", reason: error.message };
    throw error;
  }
  return { kind: "split", commands };
}

function named(node: TsNode): TsNode[] {
  return node.namedChildren.filter((n): n is TsNode => n !== null);
}

function statement(node: TsNode, script: string, out: ScriptWord[][]): void {
  if (node.isMissing) throw new Opaque(`missing "${node.type}"`);
  switch (node.type) {
    case "comment":
      return;
    case "command":
      simpleCommand(node, script, out);
      return;
    case "variable_assignment":
    case "variable_assignments":
      // `x=$(cmd)`: the assignment itself runs nothing but its substitutions.
      guardRaw(node);
      substitutionsIn(node, script, out);
      return;
    case "declaration_command":
    case "unset_command":
      simpleCommand(node, script, out);
      return;
    case "for_statement":
    case "c_style_for_statement": {
      if (node.type === "c_style_for_statement") throw new Opaque("arithmetic for loop");
      for (const child of named(node)) {
        if (child.type === "do_group") statement(child, script, out);
        else substitutionsIn(child, script, out);
      }
      return;
    }
    case "function_definition": {
      // The body runs when the function is called: decide its commands now.
      for (const child of named(node)) if (child.type !== "word") statement(child, script, out);
      return;
    }
    case "test_command":
      guardRaw(node);
      substitutionsIn(node, script, out);
      return;
    case "heredoc_redirect":
    case "file_redirect":
    case "herestring_redirect":
      redirect(node, script, out);
      return;
  }
  if (!CONTAINERS.has(node.type)) throw new Opaque(`shell construct "${node.type}"`);
  for (const child of named(node)) {
    if (node.type === "case_item" && child.type !== "command" && !CONTAINERS.has(child.type)) {
      // The pattern of a case item: only its substitutions run.
      if (!isStatement(child)) {
        substitutionsIn(child, script, out);
        continue;
      }
    }
    if (
      (node.type === "case_statement" || node.type === "redirected_statement") &&
      !isStatement(child) && !child.type.endsWith("redirect")
    ) {
      substitutionsIn(child, script, out);
      continue;
    }
    statement(child, script, out);
  }
}

function isStatement(node: TsNode): boolean {
  return node.type === "command" || CONTAINERS.has(node.type) || node.type.endsWith("statement") ||
    node.type === "variable_assignment" || node.type === "declaration_command" ||
    node.type === "function_definition" || node.type === "test_command" ||
    node.type === "comment" || node.type === "variable_assignments" ||
    node.type === "unset_command";
}

function redirect(node: TsNode, script: string, out: ScriptWord[][]): void {
  if (node.type !== "heredoc_redirect") {
    guardRaw(node);
    substitutionsIn(node, script, out);
    return;
  }
  const start = named(node).find((n) => n.type === "heredoc_start");
  const quoted = start !== undefined && /['"\\]/.test(start.text);
  for (const child of named(node)) {
    if (child.type === "heredoc_body") {
      if (!quoted) substitutionsIn(child, script, out);
    } else if (child.type.endsWith("redirect")) {
      redirect(child, script, out);
    } else if (isStatement(child)) {
      statement(child, script, out); // `cat <<EOF | sh`: the pipeline's next command
    } else substitutionsIn(child, script, out);
  }
}

/** Decides the commands of every substitution under `node` (not descending into them twice). */
function substitutionsIn(node: TsNode, script: string, out: ScriptWord[][]): void {
  for (const child of named(node)) {
    if (SUBSTITUTIONS.has(child.type)) {
      for (const inner of named(child)) statement(inner, script, out);
    } else if (child.type === "arithmetic_expansion") {
      substitutionsIn(child, script, out);
    } else {
      substitutionsIn(child, script, out);
    }
  }
}

/** A single-quoted string holding `$(` or a backquote can still run as bash arithmetic. */
function guardRaw(node: TsNode): void {
  if (node.type === "raw_string" && /\$\(|`/.test(node.text)) {
    throw new Opaque(`command substitution inside the quoted string ${node.text}`);
  }
  for (const child of named(node)) guardRaw(child);
}

/**
 * One simple command: its text with each substitution replaced by a
 * placeholder (`$__sbx`, whose value is unknown), split by the hand-written
 * splitter; the substitutions' own commands are decided as parts.
 */
function simpleCommand(node: TsNode, script: string, out: ScriptWord[][]): void {
  guardRaw(node);
  const cuts: [number, number][] = [];
  const collect = (n: TsNode) => {
    for (const child of named(n)) {
      if (SUBSTITUTIONS.has(child.type) || child.type === "arithmetic_expansion") {
        cuts.push([child.startIndex, child.endIndex]);
        if (child.type === "arithmetic_expansion") substitutionsIn(child, script, out);
        else for (const inner of named(child)) statement(inner, script, out);
      } else if (child.type.endsWith("redirect")) {
        cuts.push([child.startIndex, child.endIndex]);
        redirect(child, script, out);
      } else collect(child);
    }
  };
  collect(node);
  // Offsets are in UTF-8 bytes in some builds and UTF-16 units in others: work on the node's text.
  let text = node.text;
  const base = node.startIndex;
  if (script.slice(node.startIndex, node.endIndex) !== node.text) {
    throw new Opaque("cannot map the command's text");
  }
  for (const [from, to] of cuts.sort((a, b) => b[0] - a[0])) {
    const replacement = script.slice(from, to).startsWith("<") ||
        script.slice(from, to).startsWith(">") ||
        /^[0-9&]*[<>]/.test(script.slice(from, to))
      ? " "
      : "$__sbx";
    text = text.slice(0, from - base) + replacement + text.slice(to - base);
  }
  // `time CMD` (the keyword) runs CMD and times it.
  text = text.replace(/^time(?:\s+-p)?\s+(?=\S)/, "");
  const parsed = parseScript(text);
  if (parsed.kind === "opaque") throw new Opaque(parsed.reason);
  out.push(...parsed.commands.map((c) => [...c]));
}
