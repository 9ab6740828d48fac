/**
 * VM templating: boot one guest per configuration until its agent is ready (no container,
 * no share mounted: QEMU refuses to migrate with a 9p mount), save it with QMP `migrate`
 * to a file, and start each container's VM from that file (`-incoming defer`, then
 * `migrate-incoming`) with its own sockets, share, name and uuid. The stand-in then gives
 * the clone its own identity (random seed, clock) in the agent's hello.
 *
 * A template is keyed by everything that shapes the saved guest: kernel, initrd, image,
 * hypervisor.args, kernel parameters, accelerator, memory, and this executable; when any
 * changes, a new template is built and the old ones are removed.
 *
 *   <root>/.templates/<key>/snapshot   the saved guest
 *   <root>/.templates/.lock            one builder at a time
 */
import { createHash } from "node:crypto";
import {
  closeSync,
  createWriteStream,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
} from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import type { ResolvedBundle } from "../config/resolver.ts";
import { RuntimeError } from "../errors.ts";
import type { Logger } from "../log/logger.ts";
import { Channel } from "../protocol/channel.ts";
import { PROTOCOL_VERSION } from "../protocol/messages.ts";
import { connectUnixRetry, socketTransport } from "../protocol/socket.ts";
import { LOCK_EX, LOCK_UN, libc } from "../sys/libc.ts";
import { unmountAndRemove } from "../sys/mounts.ts";
import { spawnWithParentDeath } from "../sys/spawn.ts";
import { consoleTail, planVm, QEMU_CAPABILITIES, socketPath, VM_FILES, type VmPlan } from "./launcher.ts";
import { Qmp } from "./qmp.ts";

export const TEMPLATES_DIR = ".templates";
export const SNAPSHOT = "snapshot";
/** Where a template build receives its guest's migration stream. */
const MIGRATION_SOCKET = "migration.sock";
const MIGRATE_POLL_MS = 20;
const MIGRATE_MS = 60_000;
const HELLO_MS = 250;
/** How long a guest whose agent channel closed gets to exit, so the error can say how. */
const EXIT_WAIT_MS = 2_000;

/** On when vm.json says `"template": true` or CC_OCI_TEMPLATE=1; CC_OCI_TEMPLATE=0 wins. */
export function templatingEnabled(r: ResolvedBundle): boolean {
  const env = process.env.CC_OCI_TEMPLATE;
  if (env === "0" || env === "1") return env === "1";
  return r.vm.vm.template === true;
}

function fileId(path: string | undefined): string {
  if (!path) return "-";
  const st = statSync(path);
  return `${path}:${st.size}:${st.mtimeMs}`;
}

export function templateKey(r: ResolvedBundle, plan: VmPlan): string {
  const h = createHash("sha256");
  h.update(
    JSON.stringify({
      kernel: fileId(plan.kernel),
      initrd: fileId(plan.initrd),
      image: fileId(plan.image),
      hypervisorArgs: readFileSync(r.hypervisorArgsFile, "utf8"),
      hypervisor: plan.path,
      kernelParams: r.vm.vm.kernelParameters,
      extra: r.vm.vm.hypervisorParameters,
      accel: plan.accel,
      memory: plan.memoryMiB,
      runtime: fileId(process.execPath),
    }),
  );
  return h.digest("hex").slice(0, 16);
}

/** The snapshot for this configuration, built now (under a lock) if there is none. */
export async function ensureTemplate(
  root: string,
  r: ResolvedBundle,
  plan: VmPlan,
  log: Logger,
  bootTimeoutMs: number,
): Promise<string> {
  const top = join(root, TEMPLATES_DIR);
  const key = templateKey(r, plan);
  const snapshot = join(top, key, SNAPSHOT);
  if (exists(snapshot)) return snapshot;
  mkdirSync(top, { recursive: true, mode: 0o700 });
  const lock = openSync(join(top, ".lock"), "a", 0o600);
  try {
    libc().flock(lock, LOCK_EX);
    if (exists(snapshot)) return snapshot;
    // Templates of other configurations are stale: this one replaces them.
    for (const old of readdirSync(top)) if (old !== ".lock") unmountAndRemove(join(top, old));
    const build = join(top, `${key}.build`);
    await buildTemplate(r, build, log, bootTimeoutMs);
    renameSync(build, join(top, key));
    log.info(`built VM template ${join(top, key)}`);
    return snapshot;
  } finally {
    libc().flock(lock, LOCK_UN);
    closeSync(lock);
  }
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function buildTemplate(
  r: ResolvedBundle,
  dir: string,
  log: Logger,
  bootTimeoutMs: number,
): Promise<void> {
  unmountAndRemove(dir);
  mkdirSync(join(dir, VM_FILES.shared), { recursive: true, mode: 0o700 });
  const plan = planVm(r, dir, "template");
  const hvLog = openSync(join(dir, VM_FILES.hypervisorLog), "a");
  const qemu = spawnWithParentDeath([plan.path, ...plan.args], {
    cwd: dir,
    stdio: ["ignore", hvLog, hvLog],
    keepCapabilities: Object.values(QEMU_CAPABILITIES),
  });
  closeSync(hvLog);
  let exited: number | undefined;
  void qemu.exited.then((c) => {
    exited = c;
  });
  // The same words as a cold boot's errors (standin/container.ts): one bound, one story.
  const fail = (what: string) =>
    new RuntimeError(
      `building the VM template: ${what}${exited !== undefined ? ` (hypervisor exited with status ${exited})` : ""}; console: ${consoleTail(dir)}`,
    );
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    const deadline = Date.now() + bootTimeoutMs;
    const sock = await connectUnixRetry(
      socketPath(dir, VM_FILES.agent),
      deadline,
      () => exited === undefined,
    ).catch(() => {
      throw fail("the hypervisor did not open the agent socket");
    });
    const agent = new Channel(socketTransport(sock));
    let ready = false;
    // A closed channel (QEMU gone) fails each call at once, without a turn of the event
    // loop: without the isClosed check this loop would spin to the deadline, never seeing
    // QEMU's exit.
    while (!ready && Date.now() < deadline && exited === undefined && !agent.isClosed) {
      ready = await agent.call("hello", { version: PROTOCOL_VERSION }, HELLO_MS).then(
        () => true,
        () => false,
      );
    }
    if (!ready) {
      // (an unref'd timer: a pending one would keep the caller alive after the error)
      const bound = new Promise((r) => setTimeout(r, EXIT_WAIT_MS).unref());
      if (agent.isClosed) await Promise.race([qemu.exited, bound]);
      throw fail(`the guest agent did not come up within ${bootTimeoutMs} ms`);
    }
    const qmp = await Qmp.connect(socketPath(dir, VM_FILES.qmp));
    await qmp.execute("stop");
    // QEMU may not spawn (-sandbox spawn=deny: no `exec:cat > file`): it connects to us instead.
    const saved = await receiveSnapshot(socketPath(dir, MIGRATION_SOCKET), join(dir, SNAPSHOT));
    try {
      await qmp.execute("migrate", { uri: `unix:${socketPath(dir, MIGRATION_SOCKET)}` });
      await waitMigration(qmp, (s) => fail(`saving the guest: migration ${s}`));
      await saved.written;
    } finally {
      saved.close();
    }
    await qmp.execute("quit").catch(() => {});
    qmp.close();
    agent.close();
    await qemu.exited;
    log.debug(`template saved: ${statSync(join(dir, SNAPSHOT)).size} bytes`);
  } catch (err) {
    if (exited === undefined) process.kill(qemu.pid, "SIGKILL");
    unmountAndRemove(dir);
    throw err;
  } finally {
    process.chdir(cwd);
  }
}

/** Polls query-migrate until the migration completed; anything else after it is an error. */
export async function waitMigration(qmp: Qmp, error: (status: string) => Error): Promise<void> {
  const until = Date.now() + MIGRATE_MS;
  while (Date.now() < until) {
    const info = (await qmp.execute("query-migrate")) as { status?: string };
    if (info.status === "completed") return;
    if (info.status === "failed" || info.status === "cancelled") throw error(info.status);
    await Bun.sleep(MIGRATE_POLL_MS);
  }
  throw error("timed out");
}

/**
 * A listener for the one migration stream QEMU sends, written to `file`; `written` settles
 * when the stream has ended and is on disk (or rejects with the write's error).
 */
async function receiveSnapshot(path: string, file: string) {
  const server = createServer();
  const written = new Promise<void>((resolve, reject) => {
    server.once("connection", (sock) => {
      server.close();
      const out = createWriteStream(file, { mode: 0o600 });
      sock.pipe(out);
      out.once("finish", () => resolve());
      out.once("error", reject);
      sock.once("error", reject);
    });
  });
  written.catch(() => {});
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  return { written, close: () => server.close() };
}

/**
 * A clone starts with its state read from the snapshot, open as this fd of QEMU's (the
 * stand-in passes it): QEMU reads the file itself, and spawns nothing (spawn=deny).
 */
export const INCOMING_FD = 3;
export const INCOMING_ARGS = ["-incoming", `fd:${INCOMING_FD}`];

/** Waits until the clone has its state, then lets it run. */
export async function restoreFromTemplate(qmpPath: string, deadline: number): Promise<void> {
  const sock = await connectUnixRetry(qmpPath, deadline);
  sock.destroy();
  const qmp = await Qmp.connect(qmpPath);
  try {
    const until = Date.now() + MIGRATE_MS;
    for (;;) {
      const st = (await qmp.execute("query-status")) as { status?: string };
      if (st.status === "paused" || st.status === "postmigrate" || st.status === "running") break;
      if (Date.now() > until) throw new RuntimeError(`restoring the VM template: guest state ${st.status}`);
      await Bun.sleep(MIGRATE_POLL_MS);
    }
    // Without -S the guest may already run once its state is in: cont is then a no-op.
    await qmp.execute("cont").catch(() => {});
  } finally {
    qmp.close();
  }
}
