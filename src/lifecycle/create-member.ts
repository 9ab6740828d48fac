/**
 * create of a pod's container other than its sandbox (lifecycle/pod.ts): no VM is booted.
 * Its stand-in (standin/member.ts) puts it into the sandbox's running VM, sized for the pod
 * when the sandbox was created; the container's own limits become its cgroup's in the
 * guest, bounded by that VM (guest-config.ts boundMemory). Its state has no `vm`: deleting
 * it leaves the pod's VM. Any failure undoes everything before the error, as create's.
 */
import { join } from "node:path";
import type { resolveBundle } from "../config/resolver.ts";
import { RuntimeError } from "../errors.ts";
import { podShareDir } from "../protocol/guest-layout.ts";
import type { MemberLaunch } from "../standin/launch.ts";
import { writeFileNamed } from "../sys/files.ts";
import { privilege } from "../sys/privilege.ts";
import { hostProcess, isAlive } from "../sys/proc.ts";
import type { RuntimeContext } from "./context.ts";
import {
  bootTimeoutMs,
  type CreateRequest,
  creatingState,
  handOver,
  undoCreate,
  writePidFile,
} from "./create.ts";
import { guestConfig } from "./guest-config.ts";
import { runHooks } from "./hooks.ts";
import { podNamespaces } from "./namespaces.ts";
import { podRole } from "./pod.ts";
import { liveStatus, toSpecState } from "./query.ts";
import { saveConfig } from "./saved-config.ts";
import { type StartedStandin, startStandin } from "./spawn-standin.ts";

export async function createMember(
  ctx: RuntimeContext,
  id: string,
  flags: CreateRequest,
  detached: boolean,
  r: ReturnType<typeof resolveBundle>,
  terminal: boolean,
  sandboxId: string,
): Promise<StartedStandin> {
  if (privilege() === "user")
    throw new RuntimeError("a pod's containers are root's (CRI): this user cannot create one");
  const sandbox = ctx.store.tryRead(sandboxId);
  const named = `the pod's sandbox "${sandboxId}" (${r.configFile}, annotation of its sandbox id)`;
  if (!sandbox) throw new RuntimeError(`${named} does not exist under ${ctx.root}`);
  const status = liveStatus(sandbox);
  if ((status !== "created" && status !== "running") || !sandbox.standin || !sandbox.vm)
    throw new RuntimeError(`${named} is ${status}: its VM must be up to take the pod's containers`);
  if (podRole(sandboxId, sandbox.annotations, "its state").kind !== "sandbox")
    throw new RuntimeError(`${named} is not a pod's sandbox container`);
  const joined = podNamespaces(r.oci, r.configFile, sandbox.standin.pid);
  const dir = ctx.store.dir(id);
  ctx.store.reserve(id, { ...creatingState(id, r), pod: { sandbox: sandboxId } });
  let standin: StartedStandin | undefined;
  try {
    saveConfig(dir, r.oci);
    const { config, shares } = guestConfig(r.oci, id, r.rootfs, {
      vcpus: sandbox.vm.vcpus ?? 1,
      memoryMiB: sandbox.vm.memoryMiB ?? 0,
      note: (msg) => ctx.logger.debug(`${id}: ${msg}`),
      shareDir: podShareDir(id),
    });
    const launch: MemberLaunch = {
      kind: "member",
      id,
      root: ctx.root,
      stateDir: dir,
      sandbox: { id: sandboxId, stateDir: ctx.store.dir(sandboxId) },
      guestConfig: config,
      shares,
      join: joined,
      terminal: terminal ? { consoleSocket: flags.consoleSocket, console: flags.console } : undefined,
      detached,
      log: ctx.loggerOptions,
    };
    const launchFile = join(dir, "standin.json");
    writeFileNamed(launchFile, JSON.stringify(launch));
    ctx.logger.phase(id, "standin-spawn");
    standin = await startStandin(launchFile, bootTimeoutMs(sandbox.vm.accelerator), terminal, (pid) => {
      const proc = hostProcess(pid);
      if (proc) ctx.store.update(id, (s) => ({ ...s, standin: proc }));
    });
    const proc = hostProcess(standin.ready.pid);
    if (!proc) throw new RuntimeError("the container's stand-in exited during create");
    const state = ctx.store.update(id, (s) => ({ ...s, standin: proc }));
    await runHooks(
      ["prestart", "createRuntime", "createContainer"],
      r.oci,
      { ...toSpecState(state), status: "created" },
      ctx.logger,
    );
    if (!isAlive(proc)) throw new RuntimeError("the container's stand-in exited during create (its hooks)");
    if (flags.pidFile) writePidFile(flags.pidFile, standin.ready.pid);
    handOver(ctx, id, standin, "created");
    return standin;
  } catch (err) {
    await undoCreate(ctx, id, standin);
    throw err;
  }
}
