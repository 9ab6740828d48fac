/**
 * How this executable starts itself in another role. In a compiled binary argv[1] is a
 * "/$bunfs/..." path that must not be passed again; from source it is the script to run.
 */
export function selfArgv(...args: string[]): string[] {
  const script = process.argv[1];
  const fromSource = script !== undefined && !script.startsWith("/$bunfs/") && /\.[cm]?[jt]s$/.test(script);
  return fromSource ? [process.execPath, script, ...args] : [process.execPath, ...args];
}
