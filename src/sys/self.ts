/**
 * How this executable starts itself in another role (`__standin`, `__netclean`...).
 *  - Compiled binary (`bun build --compile`): modules live under "/$bunfs/" and
 *    process.argv[1] is such a path, which must NOT be passed again: [execPath, role...].
 *  - From source (`bun src/main.ts`): the runtime is bun and the script is src/main.ts,
 *    located from this file rather than taken from process.argv[1], which is another
 *    script under `bun test` or when a tool imports these modules.
 *  - Bundled into one .js file: the entry point, Bun.main.
 */
import { resolve } from "node:path";

export function isCompiled(): boolean {
  // Not import.meta.path: with --minify/--bytecode it is the build-time source path.
  return Bun.main.startsWith("/$bunfs/");
}

/** The command that runs this program's main module: argv to which a role is appended. */
export function selfCommand(): string[] {
  if (isCompiled()) return [process.execPath];
  const fromSource = /[/\\]sys[/\\]self\.ts$/.test(import.meta.path);
  return [process.execPath, fromSource ? resolve(import.meta.dir, "../main.ts") : Bun.main];
}

export function selfArgv(...args: string[]): string[] {
  return [...selfCommand(), ...args];
}
