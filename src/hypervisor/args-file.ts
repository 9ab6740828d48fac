import { readFileSync } from "node:fs";
import { RuntimeError } from "../errors.ts";

/** One argument of hypervisor.args with where it came from, for errors that name file:line. */
export interface ArgLine {
  text: string;
  line: number;
}

export interface HypervisorArgsFile {
  file: string;
  /** First non-comment line: the hypervisor executable (it may hold tags too). */
  path: ArgLine;
  args: ArgLine[];
}

/**
 * hypervisor.args: the hypervisor's path on the first non-comment line, then exactly one
 * argument per line. Lines whose first non-blank character is `#`, and blank lines, are
 * ignored; leading and trailing white space is trimmed (an argument keeps inner spaces).
 */
export function parseHypervisorArgs(text: string, file: string): HypervisorArgsFile {
  const lines: ArgLine[] = [];
  text.split("\n").forEach((raw, i) => {
    const t = raw.trim();
    if (t === "" || t.startsWith("#")) return;
    lines.push({ text: t, line: i + 1 });
  });
  const [path, ...args] = lines;
  if (!path) throw new RuntimeError(`${file}: no hypervisor path (the first non-comment line)`);
  return { file, path, args };
}

export function readHypervisorArgs(file: string): HypervisorArgsFile {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new RuntimeError(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return parseHypervisorArgs(text, file);
}
