/**
 * OCI hooks, run on the host with the container's state JSON on stdin, in the order the
 * runtime spec gives. `args` has execv semantics (args[0] is argv[0]); `timeout` is in
 * seconds. A failing hook is an error for every kind but poststart and poststop, which
 * only warn (runtime-spec config.md#posix-platform-hooks).
 */
import type { Hook, HookKind, OciConfig } from "../config/oci-schema.ts";
import { RuntimeError } from "../errors.ts";
import type { Logger } from "../log/logger.ts";
import type { SpecState } from "../state/schema.ts";

const WARN_ONLY: ReadonlySet<HookKind> = new Set(["poststart", "poststop"]);

async function runHook(kind: HookKind, hook: Hook, state: SpecState, cwd: string): Promise<void> {
  const [argv0, ...rest] = hook.args?.length ? hook.args : [hook.path];
  const proc = Bun.spawn([hook.path, ...rest], {
    argv0,
    cwd,
    env: Object.fromEntries(
      (hook.env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]),
    ),
    stdin: new TextEncoder().encode(JSON.stringify(state)),
    stdout: "ignore",
    stderr: "pipe",
  });
  const timer = hook.timeout ? setTimeout(() => proc.kill("SIGKILL"), hook.timeout * 1000) : undefined;
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]).catch((err) => {
    throw new RuntimeError(`${kind} hook ${hook.path}: ${(err as Error).message}`);
  });
  if (timer) clearTimeout(timer);
  if (code !== 0) {
    const why = proc.signalCode
      ? `killed by ${proc.signalCode}${hook.timeout ? ` (timeout ${hook.timeout}s)` : ""}`
      : `exit status ${code}`;
    const detail = stderr.trim().split("\n").pop();
    throw new RuntimeError(`${kind} hook ${hook.path} failed: ${why}${detail ? `: ${detail}` : ""}`);
  }
}

export async function runHooks(
  kinds: HookKind[],
  oci: OciConfig,
  state: SpecState,
  log: Logger,
): Promise<void> {
  for (const kind of kinds) {
    for (const hook of oci.hooks?.[kind] ?? []) {
      log.debug(`running ${kind} hook ${hook.path}`);
      try {
        await runHook(kind, hook, state, state.bundle);
      } catch (err) {
        if (!WARN_ONLY.has(kind)) throw err;
        log.warn((err as Error).message);
      }
    }
  }
}
