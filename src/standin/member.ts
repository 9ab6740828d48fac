/**
 * The stand-in of a pod's container other than its sandbox (lifecycle/pod.ts): the process
 * in its --pid-file. It has no VM: it binds the container's rootfs and volumes into the
 * sandbox's share (below pods/<id>/), creates the container in the sandbox's VM through the
 * sandbox's hub, and from then on does what a container's stand-in does (stdio, signals,
 * its own hub for start, kill, exec, ps, update, pause) with the sandbox's hub as its agent.
 * It exits with the workload's status, once the container has left the VM and its shares
 * are unmounted; the VM goes on. A VM that goes away (the pod stopped) is a SIGKILL.
 */
import { mkdirSync } from "node:fs";
import { join, relative } from "node:path";
import { errorMessage } from "../errors.ts";
import { SUN_PATH_MAX, socketPath, VM_FILES } from "../hypervisor/launcher.ts";
import { Logger } from "../log/logger.ts";
import { Channel } from "../protocol/channel.ts";
import { podShareDir } from "../protocol/guest-layout.ts";
import type { EventEnvelope } from "../protocol/messages.ts";
import { connectUnix, socketTransport } from "../protocol/socket.ts";
import { StateStore } from "../state/store.ts";
import { unmountAndRemove } from "../sys/mounts.ts";
import { forwardSignals, relayWinsize } from "./forward.ts";
import { Hub } from "./hub.ts";
import type { MemberLaunch } from "./launch.ts";
import { reportReady, watchStarter } from "./launch.ts";
import { bindShares } from "./share.ts";
import { recordExit, recordOomKill, serveStateChanges } from "./state-changes.ts";
import { type HostStdio, pipeStdio, terminalStdio } from "./stdio.ts";

const SIGKILL_STATUS = 128 + 9;
/** How long output may take to drain after the exit event (the guest already sent EOF). */
const DRAIN_MS = 5_000;

export async function runMemberStandin(spec: MemberLaunch): Promise<number> {
  const log = new Logger(spec.log);
  const store = new StateStore(spec.root);
  const shared = join(spec.sandbox.stateDir, VM_FILES.shared);
  const mine = join(shared, podShareDir(spec.id));
  let sandbox: Channel | undefined;
  let hub: Hub | undefined;
  let created = false;

  let tornDown = false;
  const teardown = async () => {
    if (tornDown) return;
    tornDown = true;
    hub?.close();
    // The container leaves the VM before its rootfs leaves the share under it.
    if (created) await sandbox?.call("remove", { id: spec.id }).catch(() => {});
    sandbox?.close();
    try {
      unmountAndRemove(mine);
    } catch (err) {
      log.error(`${spec.id}: ${errorMessage(err)}`);
    }
  };

  // As for a container's stand-in: a create that went away leaves nothing running.
  watchStarter(() => {
    const s = store.tryRead(spec.id);
    if (s && s.status !== "creating") return;
    log.error(`${spec.id}: the create call went away before the container was created: tearing it down`);
    void teardown().then(() => process.exit(1));
  });

  try {
    process.chdir(spec.stateDir);
    // Relative: the two state directories are siblings, and an absolute path may not fit sun_path.
    const sandboxHub = relative(spec.stateDir, join(spec.sandbox.stateDir, VM_FILES.hub));
    if (sandboxHub.length > SUN_PATH_MAX)
      throw new Error(
        `the sandbox's hub ${sandboxHub} is longer than a socket path may be (${SUN_PATH_MAX}): use a shorter sandbox id`,
      );
    const upstream = new Channel(socketTransport(await connectUnix(sandboxHub)));
    sandbox = upstream;
    try {
      mkdirSync(join(shared, "pods"), { mode: 0o711 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    bindShares(shared, spec.shares);

    // Until the handlers below exist (the create's answer, the hub's listen), what comes is
    // kept: the sandbox's hub may route the container's exit before its create answer.
    const early: EventEnvelope[] = [];
    let goneEarly = false;
    let onEvent: (ev: EventEnvelope) => void = (ev) => early.push(ev);
    let onGone: () => void = () => {
      goneEarly = true;
    };
    upstream.onEvent = (ev) => onEvent(ev);
    upstream.onClose = () => onGone();
    const io: HostStdio = spec.terminal ? terminalStdio(upstream, spec.terminal) : pipeStdio(upstream);
    const started = await upstream.call("create", {
      id: spec.id,
      config: spec.guestConfig,
      stdio: io.stdio,
      consoleSize: io.consoleSize,
      pod: { sandbox: spec.sandbox.id, join: spec.join },
    });
    created = true;
    io.startInput();

    const h = new Hub(upstream, spec.id);
    hub = h;
    serveStateChanges(h, upstream, store, spec.id, (frozen) =>
      upstream.call("freeze", { id: spec.id, frozen }),
    );
    // The pod's network is the sandbox's, joined when it was created.
    h.local.connectNetwork = async () => ({ interfaces: [] });
    h.local.checkpoint = async () => {
      throw new Error("checkpoint of a pod's container is not supported (its VM is the pod's)");
    };
    if (spec.terminal) relayWinsize(h, io, spec.id, (ws) => upstream.call("resize", { id: spec.id, ...ws }));
    await h.listen(socketPath(spec.stateDir, VM_FILES.hub));

    const status = await new Promise<number>((resolve) => {
      let finishing = false;
      const finish = async (code: number) => {
        if (finishing) return;
        finishing = true;
        await Promise.race([io.drained, Bun.sleep(DRAIN_MS)]);
        recordExit(store, spec.id, code, log);
        await teardown();
        resolve(code);
      };
      onEvent = (ev) => {
        if (h.routeEvent(ev)) return;
        if (ev.event === "exit" && ev.id === spec.id && !ev.execId) void finish(ev.status);
        if (ev.event === "oom" && ev.id === spec.id) recordOomKill(store, spec.id, log);
      };
      onGone = () => {
        created = false; // the VM, and the container in it, are gone
        void finish(SIGKILL_STATUS);
      };
      forwardSignals((signal) => void upstream.call("signal", { id: spec.id, signal }).catch(() => {}));
      reportReady({ ok: true, pid: process.pid, guestPid: started.pid }, true);
      for (const ev of early.splice(0)) onEvent(ev);
      if (goneEarly) onGone();
    });
    return status;
  } catch (err) {
    const msg = errorMessage(err);
    log.error(`${spec.id}: ${msg}`);
    await teardown();
    reportReady({ ok: false, error: msg });
    return 1;
  }
}
