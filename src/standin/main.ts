/** `__standin <state-dir>/<launch file>`: the hidden role create and exec start. */
import { readJsonFile } from "../config/validate.ts";
import { errorMessage } from "../errors.ts";
import { Logger } from "../log/logger.ts";
import { libc } from "../sys/libc.ts";
import { runContainerStandin } from "./container.ts";
import { runExecStandin } from "./exec.ts";
import { Launch, reportedReady, reportReady } from "./launch.ts";
import { runMemberStandin } from "./member.ts";
import { restoreBlockingAtExit } from "./stdio.ts";

/** How long a detached stand-in waits for its starter to exit (see launch.ts `detached`). */
const REPARENT_WAIT_MS = 10_000;

export async function runStandin(argv: string[]): Promise<number> {
  const starter = libc().getppid();
  const file = argv[0];
  if (!file) {
    process.stderr.write("usage: __standin LAUNCH-FILE\n");
    return 1;
  }
  let spec: ReturnType<typeof Launch.parse>;
  try {
    spec = readJsonFile(Launch, file);
  } catch (err) {
    reportReady({ ok: false, error: (err as Error).message });
    return 1;
  }
  process.title = `cc-oci-runtime standin ${spec.id}`;
  reportFaultsToLog(new Logger(spec.log), spec.id);
  restoreBlockingAtExit();
  const status = await (spec.kind === "container"
    ? runContainerStandin(spec)
    : spec.kind === "member"
      ? runMemberStandin(spec)
      : runExecStandin(spec));
  // A stand-in that failed to start has no status for anyone: its starter, which is waiting
  // for it to exit, returns the error at once.
  if (spec.detached && reportedReady()) {
    const until = Date.now() + REPARENT_WAIT_MS;
    while (libc().getppid() === starter && Date.now() < until) await Bun.sleep(10);
  }
  return status;
}

/**
 * The stand-in's fds 1 and 2 are the container's: a fault must not end it with a crash
 * dump there (and the workload's status lost). An unexpected error is the runtime's: one
 * line in its log, and the stand-in goes on holding the container.
 */
function reportFaultsToLog(log: Logger, id: string): void {
  const report = (what: string) => (err: unknown) => {
    log.error(`${id}: stand-in: ${what}: ${errorMessage(err)}`);
    log.debug(`${id}: stand-in: ${(err as Error)?.stack ?? String(err)}`);
  };
  process.on("uncaughtException", report("uncaught error"));
  process.on("unhandledRejection", report("unhandled rejection"));
}
