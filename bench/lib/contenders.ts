/**
 * The runtimes compared, behind one interface: cc-oci-runtime (plain, and with
 * CC_OCI_TEMPLATE=1), runc and crun from Debian. Every call is spawned the same way and
 * timed from spawn to exit; stdout/stderr go to files (a container may keep them open).
 *
 * crun refuses this host's mix of cgroup v1 and a cgroup2 `unified` mount, so it runs in a
 * private mount namespace without that mount: one holder process (`unshare -m`, which makes
 * the mounts private, then `umount /sys/fs/cgroup/unified`, then `sleep`) keeps the namespace
 * and each crun call enters it with `nsenter -t HOLDER -m` (no fork; ~1 ms, measured and
 * reported as the nsenter overhead).
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../../tests/lib/cli.ts";
import { CcSession, COMMAND_TIMEOUT_MS, ROOT_PREFIX, type StateFile } from "./cc.ts";
import { now, withTimeout } from "./clock.ts";
import { processesUnder } from "./proc.ts";

export type ContenderKey = "cc" | "cc-template" | "runc" | "crun";

/** The two floors: a bare QEMU boot, and a bare QEMU restore from a shared-memory snapshot. */
export type FloorKey = "floor" | "restore";

export const NAMES: Record<ContenderKey | FloorKey, string> = {
  cc: "cc-oci-runtime",
  "cc-template": "cc-oci-runtime (template)",
  runc: "runc",
  crun: "crun",
  floor: "bare QEMU boot (floor)",
  restore: "bare QEMU restore (floor)",
};

/** The ratios the suite reports, numerator / denominator, in reading order. */
export const RATIO_PAIRS: [ContenderKey | FloorKey, ContenderKey | FloorKey][] = [
  ["cc", "runc"],
  ["cc", "crun"],
  ["cc", "floor"],
  ["cc-template", "cc"],
  ["cc-template", "runc"],
  ["cc-template", "floor"],
  ["cc-template", "restore"],
];

export interface CallResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export abstract class Contender {
  readonly created = new Set<string>();
  readonly notes: string[] = [];
  /** Output files of calls; also where QEMU-less leftovers would be looked for. */
  readonly scratch = tempDir(`${ROOT_PREFIX}out-`);
  private calls = 0;

  constructor(readonly key: ContenderKey) {}

  get name(): string {
    return NAMES[this.key];
  }

  abstract get vm(): boolean;
  abstract argv(args: string[]): string[];
  abstract env(): Record<string, string | undefined>;
  /** Directories whose processes are this contender's (for the leftover check). */
  abstract dirs(): string[];

  /** One call, timed from spawn to exit. */
  async call(args: string[], timeoutMs = COMMAND_TIMEOUT_MS): Promise<CallResult> {
    const n = this.calls++;
    const out = join(this.scratch, `out.${n}`);
    const err = join(this.scratch, `err.${n}`);
    const t0 = now();
    const child = Bun.spawn(this.argv(args), {
      stdin: "ignore",
      stdout: Bun.file(out),
      stderr: Bun.file(err),
      env: this.env(),
    });
    let code: number;
    try {
      code = await withTimeout(child.exited, timeoutMs, `${this.name} ${args.join(" ")}`);
    } catch (e) {
      child.kill("SIGKILL");
      throw e;
    }
    const ms = now() - t0;
    const r = { code, ms, stdout: readFileSync(out, "utf8"), stderr: readFileSync(err, "utf8") };
    rmSync(out, { force: true });
    rmSync(err, { force: true });
    return r;
  }

  async must(args: string[]): Promise<CallResult> {
    const r = await this.call(args);
    if (r.code !== 0) throw new Error(`${this.name} ${args.join(" ")}: exit ${r.code}: ${r.stderr.trim()}`);
    return r;
  }

  /** `create` + `start` of an idle workload; returns the container's pid (`state`). */
  async createIdle(id: string, bundle: string): Promise<{ pid: number; createMs: number }> {
    this.created.add(id);
    const c = await this.must(["create", "--bundle", bundle, id]);
    await this.must(["start", id]);
    const st = JSON.parse((await this.must(["state", id])).stdout) as { pid: number; status: string };
    if (st.status !== "running") throw new Error(`${this.name}: ${id} is ${st.status} after start`);
    return { pid: st.pid, createMs: c.ms };
  }

  async deleteForce(id: string): Promise<void> {
    const r = await this.call(["delete", "--force", id]).catch((e: Error) => ({
      code: -1,
      stderr: e.message,
    }));
    if (r.code !== 0)
      this.notes.push(`${this.name} delete --force ${id}: exit ${r.code}: ${r.stderr.trim()}`);
    else this.created.delete(id);
  }

  async deleteAll(parallel = 1): Promise<void> {
    const ids = [...this.created];
    for (let k = 0; k < ids.length; k += parallel)
      await Promise.all(ids.slice(k, k + parallel).map((id) => this.deleteForce(id)));
  }

  async cleanup(): Promise<void> {
    await this.deleteAll();
    rmSync(this.scratch, { recursive: true, force: true });
  }

  /** Processes of this contender still alive (after cleanup: leftovers). */
  leftovers(): { pid: number; cmd: string }[] {
    return this.dirs().flatMap((d) => processesUnder(d));
  }
}

/** cc-oci-runtime through a CcSession (its root is cc-oci-bench-*). */
export class CcContender extends Contender {
  readonly session: CcSession;

  constructor(key: "cc" | "cc-template") {
    super(key);
    // Explicit both ways: CC_OCI_TEMPLATE=0 wins over a vm.json that says "template": true.
    this.session = new CcSession({ CC_OCI_TEMPLATE: key === "cc-template" ? "1" : "0" });
  }

  get vm(): boolean {
    return true;
  }
  argv(args: string[]): string[] {
    return this.session.rt.argv(args);
  }
  env() {
    return this.session.rt.spawnEnv();
  }
  dirs(): string[] {
    return [this.session.rt.root];
  }

  /** The container's QEMU and stand-in (state.json's vm.qemu and standin). */
  vmPids(id: string): { qemu: number; standin: number } {
    const st = this.session.stateFile(id) as StateFile & { standin?: { pid: number } };
    const qemu = st.vm?.qemu?.pid;
    const standin = st.standin?.pid;
    if (!qemu || !standin) throw new Error(`${this.name}: ${id}: no QEMU or stand-in pid in state.json`);
    return { qemu, standin };
  }

  override async cleanup(): Promise<void> {
    await this.deleteAll();
    for (const id of this.created) this.session.created.add(id);
    await this.session.cleanup();
    this.notes.push(...this.session.notes);
    rmSync(this.scratch, { recursive: true, force: true });
  }
}

/** runc or crun (Debian's), with a --root of their own. */
export class OciContender extends Contender {
  readonly root = tempDir(`${ROOT_PREFIX}${this.key}-`);
  private holder: ReturnType<typeof Bun.spawn> | undefined;

  get vm(): boolean {
    return false;
  }

  /** crun only: the holder of the private mount namespace. */
  async setup(): Promise<void> {
    if (this.key !== "crun") return;
    const ready = join(this.scratch, "ns-ready");
    this.holder = Bun.spawn(
      [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        `umount /sys/fs/cgroup/unified 2>/dev/null; : > ${ready}; exec sleep 100000`,
      ],
      { stdin: "ignore", stdout: "ignore", stderr: "ignore" },
    );
    const deadline = now() + 5_000;
    while (now() < deadline) {
      try {
        readFileSync(ready);
        return;
      } catch {
        await Bun.sleep(5);
      }
    }
    throw new Error("crun: the private mount namespace did not come up");
  }

  argv(args: string[]): string[] {
    const cli = [this.key, "--root", this.root, ...args];
    return this.holder ? ["nsenter", "-t", String(this.holder.pid), "-m", ...cli] : cli;
  }
  env() {
    return process.env;
  }
  dirs(): string[] {
    return [this.root];
  }

  /** Time of `nsenter -t HOLDER -m true` minus `true`: what crun's figures include extra. */
  async nsenterOverheadMs(samples = 20): Promise<number | undefined> {
    if (!this.holder) return undefined;
    const time = async (argv: string[]) => {
      const t = now();
      await Bun.spawn(argv, { stdio: ["ignore", "ignore", "ignore"] }).exited;
      return now() - t;
    };
    const a: number[] = [];
    const b: number[] = [];
    for (let k = 0; k < samples; k++) {
      a.push(await time(["nsenter", "-t", String(this.holder.pid), "-m", "true"]));
      b.push(await time(["true"]));
    }
    a.sort((x, y) => x - y);
    b.sort((x, y) => x - y);
    return (a[samples >> 1] ?? 0) - (b[samples >> 1] ?? 0);
  }

  override async cleanup(): Promise<void> {
    await this.deleteAll();
    if (this.holder) {
      this.holder.kill("SIGKILL");
      await this.holder.exited;
    }
    rmSync(this.root, { recursive: true, force: true });
    rmSync(this.scratch, { recursive: true, force: true });
  }
}

/** runc and crun from Debian, installed when missing. */
export function ensureInstalled(tools: string[], notes: string[]): void {
  const missing = tools.filter((t) => !Bun.which(t));
  if (!missing.length) return;
  notes.push(`installing ${missing.join(" ")} (apt-get)`);
  console.error(`bench: installing ${missing.join(" ")} with apt-get`);
  let r = Bun.spawnSync(["apt-get", "install", "-y", ...missing], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  if (r.exitCode !== 0) {
    Bun.spawnSync(["apt-get", "update"], { stdio: ["ignore", "inherit", "inherit"] });
    r = Bun.spawnSync(["apt-get", "install", "-y", ...missing], { stdio: ["ignore", "inherit", "inherit"] });
  }
  const still = tools.filter((t) => !Bun.which(t));
  if (still.length)
    throw new Error(`cannot install ${still.join(" ")} (apt-get install -y ${still.join(" ")})`);
}
