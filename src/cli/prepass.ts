import type { Command, Option } from "commander";

/**
 * runc parses flags the Go way: `-root X` means `--root X`, and booleans take
 * `--debug=false`. Commander does neither, so this pass rewrites argv first, using the
 * options the program actually defines (so it never guesses):
 *   -name / -name=v        -> --name / --name=v   (when --name exists in that scope)
 *   --flag=true|false      -> --flag | (dropped)  (for boolean flags)
 * Tokens after `--`, and after the first positional of a command that passes its
 * remaining arguments through (exec's process args), are left alone.
 */
export function goStyleArgv(program: Command, argv: string[]): string[] {
  const out: string[] = [];
  let scope: Command = program;
  let inSubcommand = false;
  let passThrough = false;
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string;
    if (passThrough || token === "--") {
      out.push(...argv.slice(i));
      break;
    }
    if (token.startsWith("-") && token.length > 1) {
      const rewritten = rewriteFlag(scope, token);
      if (rewritten === null) continue;
      out.push(rewritten);
      // A valued option given without `=` consumes the next token as its value.
      const opt = findLong(scope, rewritten);
      const next = argv[i + 1];
      if (opt && takesValue(opt) && !rewritten.includes("=") && next !== undefined) {
        out.push(next);
        i++;
      } else if (!opt && /^-[^-]$/.test(token)) {
        const short = scope.options.find((o) => o.short === token);
        if (short && takesValue(short) && next !== undefined) {
          out.push(next);
          i++;
        }
      }
      continue;
    }
    out.push(token);
    if (!inSubcommand) {
      const sub = program.commands.find((c) => c.name() === token || c.aliases().includes(token));
      if (sub) {
        scope = sub;
        inSubcommand = true;
      }
    } else if (PASS_THROUGH.has(scope.name())) {
      passThrough = true;
    }
  }
  return out;
}

/** Commands whose arguments after the container id belong to the process, not to us. */
const PASS_THROUGH = new Set(["exec", "ps"]);

function takesValue(opt: Option): boolean {
  return opt.required || opt.optional;
}

function findLong(scope: Command, token: string): Option | undefined {
  if (!token.startsWith("--")) return undefined;
  const name = token.slice(2).split("=")[0];
  return scope.options.find((o) => o.long === `--${name}`);
}

/** Returns the rewritten token, or null when the token is to be dropped (`--flag=false`). */
function rewriteFlag(scope: Command, token: string): string | null {
  let long = token;
  if (!token.startsWith("--") && token.length > 2) {
    const name = token.slice(1).split("=")[0];
    if (scope.options.some((o) => o.long === `--${name}`)) long = `-${token}`;
    else return token; // combined short flags such as -ti
  }
  const opt = findLong(scope, long);
  if (opt && !takesValue(opt) && long.includes("=")) {
    const value = long.slice(long.indexOf("=") + 1).toLowerCase();
    const base = long.slice(0, long.indexOf("="));
    if (value === "true" || value === "1") return base;
    if (value === "false" || value === "0") return null;
  }
  return long;
}
