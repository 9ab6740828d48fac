/**
 * The stand-in of one exec'd process: a client of the container's hub that holds the
 * process's stdio (or pty) and exits with its status, like the container's stand-in.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { errorMessage } from "../errors.ts";
import { socketPath, VM_FILES } from "../hypervisor/launcher.ts";
import { Logger } from "../log/logger.ts";
import { Channel } from "../protocol/channel.ts";
import { connectUnix, socketTransport } from "../protocol/socket.ts";
import { writeFileNamed } from "../sys/files.ts";
import { hostProcess } from "../sys/proc.ts";
import { forwardSignals, watchWinsize } from "./forward.ts";
import type { ExecLaunch } from "./launch.ts";
import { reportReady } from "./launch.ts";
import { pipeStdio, terminalStdio } from "./stdio.ts";

/** Status when the container went away before reporting the process's exit. */
const LOST_STATUS = 255;
const DRAIN_MS = 5_000;

export async function runExecStandin(spec: ExecLaunch): Promise<number> {
  const log = new Logger(spec.log);
  process.chdir(spec.stateDir);
  try {
    const hub = new Channel(socketTransport(await connectUnix(socketPath(spec.stateDir, VM_FILES.hub))));
    const io = spec.terminal ? terminalStdio(hub, spec.terminal) : pipeStdio(hub);
    const exited = new Promise<number>((resolve) => {
      hub.onEvent = (ev) => {
        if (ev.event === "exit" && ev.execId === spec.execId) resolve(ev.status);
      };
      hub.onClose = () => resolve(LOST_STATUS);
    });
    const started = await hub.call("exec", {
      id: spec.id,
      execId: spec.execId,
      process: spec.process,
      stdio: io.stdio,
      consoleSize: io.consoleSize,
    });
    io.startInput();
    if (spec.terminal) {
      watchWinsize(io, (ws) => hub.call("resize", { id: spec.id, execId: spec.execId, ...ws }));
    }
    forwardSignals(
      (signal) => void hub.call("signal", { id: spec.id, execId: spec.execId, signal }).catch(() => {}),
    );
    // Recorded by the stand-in itself, so that it is gone exactly when the stand-in is.
    const me = hostProcess(process.pid);
    if (me)
      writeFileNamed(join(spec.stateDir, VM_FILES.execs, `${spec.execId}.pid.json`), JSON.stringify(me));
    reportReady({ ok: true, pid: process.pid, guestPid: started.pid });
    const status = await exited;
    await Promise.race([io.drained, Bun.sleep(DRAIN_MS)]);
    hub.close();
    forgetExec(spec.stateDir, spec.execId);
    return status;
  } catch (err) {
    const msg = errorMessage(err);
    log.error(`${spec.id}: exec ${spec.execId}: ${msg}`);
    reportReady({ ok: false, error: msg });
    forgetExec(spec.stateDir, spec.execId);
    return LOST_STATUS;
  }
}

/** An ended exec leaves nothing in the state directory (ps -f json lists the live ones). */
export function forgetExec(stateDir: string, execId: string): void {
  for (const suffix of ["launch.json", "pid.json"]) {
    rmSync(join(stateDir, VM_FILES.execs, `${execId}.${suffix}`), { force: true });
  }
}
