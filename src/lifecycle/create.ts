/**
 * create: bundle in, VM up, container created in the guest (user process not started),
 * hooks run, pid file written. Any failure undoes everything (destroy) before the error.
 */

import { readFileSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { OCI_VERSION } from "../config/build.ts";
import { resolveBundle } from "../config/resolver.ts";
import { guestLayer, WRITABLE_LAYER_ANNOTATION } from "../config/writable-layer.ts";
import { errorMessage, RuntimeError } from "../errors.ts";
import { realHost } from "../hypervisor/accel.ts";
import { defaultVmSize, planVm } from "../hypervisor/launcher.ts";
import { makeLayerDisk } from "../hypervisor/layer-disk.ts";
import {
  discardTemplate,
  ensureTemplate,
  INCOMING_ARGS,
  memoryArgs,
  RESTORE_FAILED,
  snapshotDamaged,
  templatingEnabled,
} from "../hypervisor/template.ts";
import { checkpointShares } from "../standin/checkpoint.ts";
import type { ContainerLaunch } from "../standin/launch.ts";
import { validateId } from "../state/store.ts";
import { advance } from "../state/transitions.ts";
import { writeFileAtomic, writeFileNamed } from "../sys/files.ts";
import { privilege, userNamespaceRefusal } from "../sys/privilege.ts";
import { hostProcess, isAlive } from "../sys/proc.ts";
import type { RuntimeContext } from "./context.ts";
import { createMember } from "./create-member.ts";
import { destroy } from "./destroy.ts";
import { checkHostPaths, guestConfig } from "./guest-config.ts";
import { runHooks } from "./hooks.ts";
import { hostCgroupPath, hostLimits, makeHostCgroup } from "./host-cgroup.ts";
import { checkNamespaces } from "./namespaces.ts";
import { podRole, podSizing } from "./pod.ts";
import { toSpecState } from "./query.ts";
import { saveConfig } from "./saved-config.ts";
import { type StartedStandin, startStandin } from "./spawn-standin.ts";
import { callStandin } from "./standin-client.ts";
import { hostSize, sizeVm } from "./vm-size.ts";

/** What create (and run) is asked: runc's create flags, by name. */
export interface CreateRequest {
  bundle: string;
  consoleSocket?: string;
  console?: string;
  pidFile?: string;
  /** false with --no-pivot (commander's negated option). */
  pivot?: boolean;
  /** false with --no-new-keyring. */
  newKeyring?: boolean;
  preserveFds?: number;
  detach?: boolean;
  /** What a terminal configuration without a console lacks, in the caller's terms (restore's). */
  noTerminal?: string;
}

/** Bound on a guest coming up: TCG boots take seconds, several at once take longer. */
export function bootTimeoutMs(accel: string): number {
  const fromEnv = Number(process.env.CC_OCI_BOOT_TIMEOUT_MS);
  if (fromEnv > 0) return fromEnv;
  return accel === "kvm" ? 20_000 : 60_000;
}

export function ownerName(uid = process.getuid?.() ?? 0): string {
  try {
    const line = readFileSync("/etc/passwd", "utf8")
      .split("\n")
      .find((l) => l.split(":")[2] === String(uid));
    if (line) return line.split(":")[0] ?? "";
  } catch {
    // No passwd database: fall back to the number.
  }
  return `#${uid}`;
}

/** A container's first state: `creating`, with this process (create) as its one writer. */
export function creatingState(id: string, r: ReturnType<typeof resolveBundle>) {
  return {
    ociVersion: OCI_VERSION,
    id,
    status: "creating" as const,
    bundle: r.bundle,
    rootfs: r.rootfs,
    created: new Date().toISOString(),
    owner: ownerName(),
    annotations: r.oci.annotations ?? {},
    creator: hostProcess(process.pid),
  };
}

/** Atomic, digits only, no newline: what containerd and podman read. */
export function writePidFile(file: string, pid: number): void {
  writeFileAtomic(file, String(pid), 0o644);
}

/** Checked before anything runs: a pid file that cannot be written must not leave a process. */
export function checkPidFileDir(file: string | undefined, exitCode = 1): void {
  if (file === undefined) return;
  const dir = dirname(resolve(file));
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    throw new RuntimeError(`--pid-file ${file}: directory ${dir} does not exist`, exitCode);
  }
  if (!isDir) throw new RuntimeError(`--pid-file ${file}: ${dir} is not a directory`, exitCode);
}

export async function createContainer(
  ctx: RuntimeContext,
  id: string,
  flags: CreateRequest,
): Promise<number> {
  await create(ctx, id, flags, true);
  return 0;
}

/** A restore's checkpoint (host directories) and CRIU's options: create restores instead. */
export interface RestoreFrom {
  imagesDir: string;
  workDir: string;
  tcpEstablished: boolean;
  fileLocks: boolean;
  extUnixSk: boolean;
}

/** What create and a pod container's create both check first, before anything runs. */
export function checkCreateRequest(ctx: RuntimeContext, id: string, flags: CreateRequest) {
  validateId(id);
  ctx.noteIgnored("--no-pivot", flags.pivot === false);
  ctx.noteIgnored("--no-new-keyring", flags.newKeyring === false);
  refusePreservedFds(flags.preserveFds);
  const r = resolveBundle(flags.bundle, ctx.logger);
  // A user's stand-in needs a user namespace of its own (spawn-standin.ts).
  const ownUserNamespace = privilege() === "user";
  checkHostPaths(r.oci, r.rootfs, r.configFile, ownUserNamespace);
  checkPidFileDir(flags.pidFile);
  if (!r.oci.process)
    throw new RuntimeError(`${r.configFile}: field "process": required to create a container`);
  const terminal = r.oci.process.terminal === true;
  if (terminal && !flags.consoleSocket && !flags.console) {
    throw new RuntimeError(
      `process.terminal is true: ${flags.noTerminal ?? "--console-socket (or --console) is required"}`,
    );
  }
  if (!terminal && flags.consoleSocket) {
    throw new RuntimeError("--console-socket given but process.terminal is not true in config.json");
  }
  // Before any VM work: a refused writable layer (pods) is an error naming its annotation.
  guestLayer(r);
  return { r, terminal, ownUserNamespace, role: podRole(id, r.oci.annotations, r.configFile) };
}

/**
 * `detached`: this call will not wait for the stand-in's exit (create; not run).
 * `restore`: the container's tree comes from a checkpoint and runs at once (restore).
 */
export async function create(
  ctx: RuntimeContext,
  id: string,
  flags: CreateRequest,
  detached: boolean,
  restore?: RestoreFrom,
): Promise<StartedStandin> {
  const { r, terminal, ownUserNamespace, role } = checkCreateRequest(ctx, id, flags);
  if (role.kind === "member") {
    if (restore)
      throw new RuntimeError("restore of a pod's container is not supported (its VM is the pod's)");
    return createMember(ctx, id, flags, detached, r, terminal, role.sandbox);
  }
  const network = checkNamespaces(r.oci, r.configFile);
  const refusal = ownUserNamespace ? userNamespaceRefusal() : undefined;
  if (refusal) throw new RuntimeError(`cannot run a container as a user: ${refusal}`);
  const dir = ctx.store.dir(id);
  // A pod's sandbox: the VM is the pod's (lifecycle/pod.ts podSizing).
  const own = r.oci.linux?.resources as Parameters<typeof sizeVm>[0];
  const size = sizeVm(
    role.kind === "sandbox" ? podSizing(r.oci.annotations, own) : own,
    defaultVmSize(r),
    hostSize(),
    (msg) => ctx.logger.debug(`${id}: ${msg}`),
  );
  // A user (or rootless podman's root) who cannot open /dev/net/tun (a host that keeps it
  // 0600) gets cards that go nowhere (nics.ts "hub"), as a template's do: enough for an
  // empty network namespace (a user's new one, --network none); one with interfaces to
  // join is then an error naming /dev/net/tun (standin/network.ts).
  const taps = realHost.readWrite("/dev/net/tun");
  if (!taps)
    ctx.logger.debug(`${id}: /dev/net/tun cannot be opened by this user: the VM's cards have no taps`);
  const plan = planVm(r, dir, id, taps ? "tap" : "hub", size);
  // A restored tree runs at once from the rootfs as the checkpoint left it: no layer over it.
  if (restore && plan.layer)
    throw new RuntimeError(
      `restore with a writable layer in the guest is not supported (${r.configFile}: annotation "${WRITABLE_LAYER_ANNOTATION}", or "writableLayer" in ${r.vm.source}): set the annotation to "share"`,
    );
  // The state exists from the first moment (`creating`, with this process as its writer),
  // so that `state`, `start` and `delete` answer for it while the VM boots.
  ctx.store.reserve(id, {
    ...creatingState(id, r),
    vm: {
      hypervisor: plan.path,
      kernel: plan.kernel,
      image: plan.image,
      initrd: plan.initrd,
      accelerator: plan.accel.accel,
      uuid: plan.uuid,
      name: plan.name,
      vcpus: plan.vcpus,
      memoryMiB: plan.memoryMiB,
      guestLayer: plan.layer,
      layerDisk: plan.layerDisk,
    },
  });
  let standin: StartedStandin | undefined;
  try {
    const resources = r.oci.linux?.resources as Parameters<typeof hostLimits>[0];
    const cgroup = makeHostCgroup(
      hostCgroupPath(r.oci.linux?.cgroupsPath as string | undefined, id, ctx.systemdCgroup === true),
      hostLimits(resources, plan, plan.accel.accel),
      (msg) => ctx.logger.debug(`${id}: ${msg}`),
    );
    if (cgroup) ctx.store.update(id, (s) => ({ ...s, hostCgroup: cgroup }));
    saveConfig(dir, r.oci);
    if (plan.layerDisk) makeLayerDisk(plan.layerDisk, true);
    const timeout = bootTimeoutMs(plan.accel.accel);
    const { config, shares } = guestConfig(r.oci, id, r.rootfs, {
      vcpus: plan.vcpus,
      memoryMiB: plan.memoryMiB,
      note: (msg) => ctx.logger.debug(`${id}: ${msg}`),
      ownIds: ownUserNamespace ? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 } : undefined,
    });
    ctx.logger.debug(`${id}: accelerator ${plan.accel.accel} (${plan.accel.reason})`);
    const launchFile = join(dir, "standin.json");
    const writeLaunch = (incoming: string | undefined) => {
      const launch: ContainerLaunch = {
        kind: "container",
        id,
        root: ctx.root,
        stateDir: dir,
        hypervisor: { path: plan.path, args: plan.args },
        guestConfig: config,
        shares: restore ? [...shares, ...checkpointShares(restore.imagesDir, restore.workDir)] : shares,
        restore: restore && {
          tcpEstablished: restore.tcpEstablished,
          fileLocks: restore.fileLocks,
          extUnixSk: restore.extUnixSk,
        },
        terminal: terminal ? { consoleSocket: flags.consoleSocket, console: flags.console } : undefined,
        bootTimeoutMs: timeout,
        detached,
        network,
        nics: plan.nics,
        guestLayer: plan.layer,
        taps,
        incoming,
        cgroup: cgroup?.dirs,
        log: ctx.loggerOptions,
      };
      writeFileNamed(launchFile, JSON.stringify(launch));
      return launchFile;
    };
    const start = (incoming: string | undefined) =>
      startStandin(
        writeLaunch(incoming),
        timeout + 30_000,
        terminal,
        (pid) => {
          const proc = hostProcess(pid);
          if (proc) ctx.store.update(id, (s) => ({ ...s, standin: proc }));
        },
        ownUserNamespace,
      );
    ctx.logger.phase(id, "standin-spawn");
    // With templating: the template memory file the VM maps, kept in the state (list --all).
    const started = templatingEnabled(r)
      ? await startFromTemplate(ctx, id, r, plan, timeout, start)
      : { standin: await start(undefined), memory: undefined };
    standin = started.standin;
    ctx.logger.phase(id, "standin-ready");
    const { ready } = standin;
    const proc = hostProcess(ready.pid);
    if (!proc) throw new RuntimeError(`the container's stand-in exited during create`);
    // Hooks see the container as created (runtime-spec: they run after the environment is
    // created); the file says so only once they passed and the pid file is written.
    const state = ctx.store.update(id, (s) => ({
      ...s,
      standin: proc,
      vm: s.vm && { ...s.vm, qemu: ready.qemu, template: started.memory },
    }));
    const created = { ...toSpecState(state), status: "created" as const };
    await runHooks(["prestart", "createRuntime", "createContainer"], r.oci, created, ctx.logger);
    ctx.logger.phase(id, "hooks-done");
    // The VM may have gone during the hooks (killed, crashed): its stand-in then winds down
    // without writing the state (this call is its writer while creating); create fails.
    if (!isAlive(ready.qemu) || standin.child.exitCode !== null || standin.child.signalCode !== null) {
      throw new RuntimeError("the container's VM exited during create (before its hooks were done)");
    }
    // The hooks have filled the namespace (Docker's veth), or it came filled (CNI): the VM
    // takes it over now, before anyone sees the container created.
    const t0 = performance.now();
    const joined = await callStandin(dir, id, "connectNetwork", { id });
    if (joined.interfaces.length) {
      const ms = (performance.now() - t0).toFixed(0);
      ctx.logger.debug(`${id}: network: ${joined.interfaces.join(", ")} (${ms} ms)`);
    }
    ctx.logger.phase(id, "network-connected");
    // QEMU has the layer's disk open: without a name its blocks go with QEMU, however it ends.
    if (plan.layerDisk) {
      rmSync(plan.layerDisk, { force: true });
      ctx.store.update(id, (s) => ({ ...s, vm: s.vm && { ...s.vm, layerDisk: undefined } }));
    }
    if (flags.pidFile) writePidFile(flags.pidFile, ready.pid);
    // A restored container runs already (as runc's restore leaves it).
    handOver(ctx, id, standin, restore ? "restored" : "created");
    return standin;
  } catch (err) {
    await undoCreate(ctx, id, standin);
    throw err;
  }
}

/** create's last write (from here on the stand-in writes the state), its link to it closed. */
export function handOver(
  ctx: RuntimeContext,
  id: string,
  standin: StartedStandin,
  done: "created" | "restored",
): void {
  ctx.store.update(id, (s) => ({ ...s, status: advance(done, id, s.status), creator: undefined }));
  standin.release();
  standin.child.unref();
  ctx.logger.phase(id, "created");
}

/** A create that failed: all of it undone. Its own error is the one reported, the cleanup's logged. */
export async function undoCreate(ctx: RuntimeContext, id: string, standin?: StartedStandin): Promise<void> {
  standin?.release();
  await destroy(ctx.store, id).catch((e: unknown) => ctx.logger.error(`${id}: ${errorMessage(e)}`));
}

/**
 * The stand-in with its VM restored from the configuration's template, which stays held
 * (not removable) until the restore is over, and the template's memory file the VM maps.
 * A restore that fails (a snapshot whose checksum changed, or one this hypervisor cannot
 * load) discards that build of the template and tries once more, rebuilt; a second failure
 * is the error.
 */
async function startFromTemplate(
  ctx: RuntimeContext,
  id: string,
  r: ReturnType<typeof resolveBundle>,
  plan: ReturnType<typeof planVm>,
  timeout: number,
  start: (incoming: string) => Promise<StartedStandin>,
): Promise<{ standin: StartedStandin; memory: string }> {
  plan.args.push(...INCOMING_ARGS);
  const cold = plan.args.length;
  for (let attempt = 1; ; attempt++) {
    const held = await ensureTemplate(ctx.root, r, plan, ctx.logger, timeout);
    plan.args.splice(cold, plan.args.length - cold, ...memoryArgs(held.memory, plan.memoryMiB, false));
    ctx.logger.debug(`${id}: starting from template ${held.snapshot}`);
    try {
      return { standin: await start(held.snapshot), memory: held.memory };
    } catch (err) {
      if (attempt > 1 || !errorMessage(err).startsWith(RESTORE_FAILED)) throw err;
      held.release();
      const why = snapshotDamaged(held.snapshot) ? "is damaged (its checksum changed)" : "did not restore";
      ctx.logger.warn(`${id}: VM template ${held.snapshot} ${why}: rebuilding it (${errorMessage(err)})`);
      await discardTemplate(ctx.root, held);
    } finally {
      held.release();
    }
  }
}

/**
 * runc hands fds 3..3+N-1 to the container process; a process in a VM cannot be given host
 * file descriptors (sockets, pipes, files are the host kernel's), so N > 0 is refused.
 */
export function refusePreservedFds(n: number | undefined): void {
  if (n && n > 0)
    throw new RuntimeError(
      `--preserve-fds ${n}: host file descriptors cannot be passed into the container's VM`,
    );
}
