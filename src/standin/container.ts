/**
 * The per-container stand-in: the process named in --pid-file. It starts the VM (as its
 * parent, so the VM dies with it), brings the container up in the guest, then holds the
 * container's stdio, forwards signals, serves the hub, and finally exits with the
 * workload's status (128+N for a death by signal N) once all output is delivered.
 */

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { errorMessage } from "../errors.ts";
import { type Hypervisor, reachAgent, startHypervisor } from "../hypervisor/boot.ts";
import { socketPath, VM_FILES } from "../hypervisor/launcher.ts";
import { restoreFromTemplate } from "../hypervisor/template.ts";
import { Logger } from "../log/logger.ts";
import type { Channel } from "../protocol/channel.ts";
import type { EventEnvelope, RequestOf } from "../protocol/messages.ts";
import { StateStore } from "../state/store.ts";
import { joinCgroup } from "../sys/cgroups.ts";
import { openNamed } from "../sys/files.ts";
import { unmountBelow } from "../sys/mounts.ts";
import { hostProcess } from "../sys/proc.ts";
import { guestCheckpointDirs, serveCheckpoint } from "./checkpoint.ts";
import { askDns, loopbackNameServers } from "./dns-relay.ts";
import { forwardSignals, relayWinsize } from "./forward.ts";
import { Hub } from "./hub.ts";
import type { ContainerLaunch } from "./launch.ts";
import { reportReady, watchStarter } from "./launch.ts";
import { applyLayer, type LayerUnpack } from "./layer.ts";
import { ContainerNetwork, enterNetworkNamespace } from "./network.ts";
import { recordJoined } from "./network-record.ts";
import { bindShares } from "./share.ts";
import { qmp, recordExit, recordOomKill, serveStateChanges } from "./state-changes.ts";
import { type HostStdio, pipeStdio, terminalStdio } from "./stdio.ts";

/** After the workload exits: how long the guest gets to power off before QEMU is killed. */
const POWEROFF_GRACE_MS = 3_000;
/** How long output may take to drain after the exit event (the guest already sent EOF). */
const DRAIN_MS = 5_000;
/** How long a QEMU killed in teardown gets to be gone. */
const QEMU_EXIT_WAIT_MS = 3_000;
/** How long a checkpoint that ended the workload may take to answer before the stand-in goes. */
const CHECKPOINT_ANSWER_MS = 30_000;
const SIGKILL_STATUS = 128 + 9;

export async function runContainerStandin(spec: ContainerLaunch): Promise<number> {
  const log = new Logger(spec.log);
  log.phase(spec.id, "standin-up");
  const store = new StateStore(spec.root);
  const dir = spec.stateDir;
  const shared = join(dir, VM_FILES.shared);
  let finishing = false;
  /** The writable layer's unpacking (standin/layer.ts), once asked for. */
  let layerUnpack: LayerUnpack | undefined;
  /** The host's rootfs as the share has it (bound with what is mounted below it). */
  const rootfsSource = spec.shares.find((s) => s.field === "root.path")?.source ?? join(shared, "rootfs");
  const deadline = Date.now() + spec.bootTimeoutMs;

  let qemu: Hypervisor | undefined;
  let agent: Channel | undefined;
  let io: HostStdio | undefined;
  let theHub: Hub | undefined;
  let onWorkloadEvent: (ev: EventEnvelope) => void = () => {};
  /** The name servers the guest relays DNS for (dns-relay.ts). */
  let relayed: string[] = [];
  const network = new ContainerNetwork(log, spec.id, spec.nics, (names) =>
    recordJoined(dir, spec.network.kind === "path" ? spec.network.path : undefined, names),
  );

  let tornDown = false;
  // Once: a second teardown (the starter's watch after a failure was reported) must not
  // unmount what a retried create's next stand-in has mounted meanwhile.
  const teardown = () => {
    if (tornDown) return;
    tornDown = true;
    theHub?.close();
    agent?.close();
    network.teardown();
    if (qemu?.alive()) process.kill(qemu.pid, "SIGKILL");
    try {
      unmountBelow(shared);
    } catch (err) {
      log.error(`${spec.id}: ${errorMessage(err)}`);
    }
  };

  // Killed in teardown: gone (its taps with it, as its fds close) before this stand-in says
  // it is done, so that nothing of the VM outlives the call that waits for the stand-in.
  const qemuGone = () =>
    qemu
      ? Promise.race([qemu.process.exited, Bun.sleep(QEMU_EXIT_WAIT_MS)]).then(() => {})
      : Promise.resolve();

  // The create process is the writer of the state until it records `created` as its last
  // act. If it goes away before that (killed), nobody will ever start or delete this VM
  // but a `delete -f`: tear it down now, so no VM runs without a state that says so.
  watchStarter(() => {
    const s = store.tryRead(spec.id);
    if (s && s.status !== "creating") return;
    log.error(`${spec.id}: the create call went away before the container was created: tearing it down`);
    teardown();
    process.exit(1);
  });

  try {
    process.chdir(dir);
    // Into the container's host cgroup first: QEMU is born in it (lifecycle/host-cgroup.ts).
    if (spec.cgroup) joinCgroup({ dirs: spec.cgroup });
    enterNetworkNamespace(log, spec);
    const taps = spec.taps ? network.openTaps() : [];
    // Not recursive: a state directory removed meanwhile (delete -f) must stay removed. It
    // may be there already: a create that retries (template-vm.ts) starts a second stand-in.
    try {
      mkdirSync(shared, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    bindShares(shared, spec.shares);
    // A clone reads its state from the template's snapshot on this fd (template-vm.ts INCOMING_FD).
    const snapshot = spec.incoming ? openNamed(spec.incoming, "r") : undefined;
    const vm = startHypervisor(spec.hypervisor.path, spec.hypervisor.args, dir, { incoming: snapshot, taps });
    qemu = vm;
    void vm.process.exited.then((code: number) => {
      log.debug(`${spec.id}: hypervisor exited with ${code}`);
    });
    log.debug(
      `${spec.id}: hypervisor pid ${vm.pid}: ${spec.hypervisor.path} ${spec.hypervisor.args.join(" ")}`,
    );

    log.phase(spec.id, "hypervisor-spawned");
    if (spec.incoming) {
      await restoreFromTemplate(socketPath(dir, VM_FILES.qmp), spec.incoming, deadline, vm.exitStatus);
      log.phase(spec.id, "restored");
    }
    const ready = await reachAgent(vm, dir, deadline, spec.bootTimeoutMs, (channel) => {
      // The agent's requests: a DNS query for the container's namespace, to one of the name
      // servers this stand-in handed it (the guest picks no address of its own here); the
      // writable layer into the rootfs, when the init of a container with one has exited.
      channel.onRequest = async (op, args) => {
        if (op === "applyLayer" && spec.guestLayer) {
          const { id } = args as RequestOf<"applyLayer">;
          if (id !== spec.id) throw new Error(`applyLayer: container "${id}" is not this VM's`);
          // Once, at the init's exit: the guest gets no second run of tar on the rootfs.
          if (layerUnpack) throw new Error("applyLayer: the layer was unpacked (or is being) already");
          layerUnpack = applyLayer(channel, id, dir, rootfsSource);
          await layerUnpack.done;
          return {};
        }
        if (op !== "dns") throw new Error(`unexpected request ${op}`);
        const { server, query } = args as RequestOf<"dns">;
        if (!relayed.includes(server))
          throw new Error(`dns relay: ${server} is not a name server of this container`);
        return { answer: (await askDns(server, Buffer.from(query, "base64"))).toString("base64") };
      };
      // From the first message on: the agent may report a fault while it creates the container.
      channel.onEvent = (ev) => {
        if (ev.event !== "log") return onWorkloadEvent(ev);
        const line = `${spec.id}: guest agent: ${ev.message}`;
        if (ev.level === "error") log.error(line);
        else if (ev.level === "debug") log.debug(line);
        else log.warn(line);
      };
    });
    const a = ready.agent;
    agent = a;
    log.debug(`${spec.id}: agent ready (guest kernel ${ready.hello.kernel})`);
    log.phase(spec.id, "agent-ready");

    io = spec.terminal ? terminalStdio(a, spec.terminal) : pipeStdio(a);
    const created = spec.restore
      ? await a.call("restore", {
          id: spec.id,
          config: spec.guestConfig,
          stdio: io.stdio,
          consoleSize: io.consoleSize,
          ...guestCheckpointDirs(),
          ...spec.restore,
        })
      : await a.call("create", {
          id: spec.id,
          config: spec.guestConfig,
          stdio: io.stdio,
          consoleSize: io.consoleSize,
          guestLayer: spec.guestLayer,
        });
    io.startInput();
    log.phase(spec.id, "guest-created");

    const stdio = io;
    theHub = new Hub(a, spec.id);
    if (spec.terminal) relayWinsize(theHub, stdio, spec.id, (ws) => a.call("resize", { id: spec.id, ...ws }));
    serveStateChanges(theHub, a, store, spec.id);
    theHub.local.connectNetwork = async () => {
      relayed = loopbackNameServers(shared, spec.guestConfig);
      return { interfaces: await network.connect(a, relayed) };
    };
    const checkpoints = serveCheckpoint(theHub, a, store, spec.id, shared, {
      stop: () => qmp("stop"),
      cont: () => qmp("cont"),
    });
    await theHub.listen(socketPath(dir, VM_FILES.hub));

    let reportExit: (status: number) => void = () => {};
    const exitStatus = new Promise<number>((resolve) => {
      reportExit = resolve;
    });
    const finish = async (status: number) => {
      if (finishing) return;
      finishing = true;
      // The VM gone during the layer's unpacking: it is stopped before anyone hears of the exit.
      await layerUnpack?.stop();
      await Promise.race([stdio.drained, Bun.sleep(DRAIN_MS)]);
      recordExit(store, spec.id, status, log);
      // A checkpoint that ended the workload is answered before the agent and the hub go.
      await Promise.race([checkpoints.idle(), Bun.sleep(CHECKPOINT_ANSWER_MS)]);
      // Once the agent has synced (its answer), the guest holds nothing worth a clean
      // power-off: teardown kills QEMU. Without an answer it gets a grace period first.
      const synced =
        vm.alive() &&
        (await a.call("shutdown", {}).then(
          () => true,
          () => false,
        ));
      if (!synced && vm.alive()) {
        // An unref'd timer: the grace period must not keep the stand-in alive by itself.
        await Promise.race([vm.process.exited, new Promise((r) => setTimeout(r, POWEROFF_GRACE_MS).unref())]);
      }
      teardown();
      await qemuGone();
      log.debug(`${spec.id}: workload exited with status ${status}`);
      reportExit(status);
    };
    onWorkloadEvent = (ev) => {
      if (theHub?.routeEvent(ev)) return;
      if (ev.event === "exit" && ev.id === spec.id) void finish(ev.status);
      if (ev.event === "oom" && ev.id === spec.id) recordOomKill(store, spec.id, log);
    };
    // The VM went away without reporting an exit (killed, crashed): the workload was killed.
    void vm.process.exited.then(() => setTimeout(() => void finish(SIGKILL_STATUS), 200));
    forwardSignals((signal) => void a.call("signal", { id: spec.id, signal }).catch(() => {}));
    reportReady({ ok: true, pid: process.pid, guestPid: created.pid, qemu: hostProcess(vm.pid) }, true);
    return await exitStatus;
  } catch (err) {
    const msg = errorMessage(err);
    log.error(`${spec.id}: ${msg}`);
    teardown();
    await qemuGone();
    reportReady({ ok: false, error: msg });
    return 1;
  }
}
