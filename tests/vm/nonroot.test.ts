/**
 * Non-root use (issue: non-root): an unprivileged user runs containers with `--root` in a
 * directory of its own. The stand-in and QEMU run as that user (in a user namespace of the
 * stand-in's where the user is root over its own ids only), the rootfs and the user's own
 * directories are shared without privileges, what the container writes is the user's on
 * the host, templates live under the user's root, and nothing is left behind.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { mountsBelow } from "../../src/sys/mounts.ts";
import { makeBundle } from "../lib/bundle.ts";
import { BIN, tempDir } from "../lib/cli.ts";
import { HOST_BOOT_ID, qemuProcesses, Runtime, standinProcesses } from "../lib/runtime.ts";
import { asUser, chownTo, type TestUser, testUser } from "../lib/user.ts";

let user: TestUser;
let rt: Runtime;

beforeAll(() => {
  user = testUser();
  rt = new Runtime({ user });
});

afterAll(async () => {
  await rt.dispose();
});

afterEach(async () => {
  for (const id of rt.leftovers()) await rt.run(["delete", "--force", id]);
});

/** The uid a process runs as on the host (its real one: /proc/PID/status Uid's first field). */
function hostUid(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("Uid:"));
  return Number(line?.split(/\s+/)[1]);
}

/** A bundle the user owns, with a writable rootfs whose /data anyone in the guest may write. */
function userBundle(args: string[], edit?: Parameters<typeof makeBundle>[0]["edit"]): string {
  const b = makeBundle({ args, writable: true, edit });
  chmodSync(join(b, "rootfs/data"), 0o1777);
  chownTo(user, b);
  return b;
}

function nothingLeftOf(id: string): void {
  expect(existsSync(join(rt.root, id))).toBe(false);
  expect(qemuProcesses(rt.root)).toEqual([]);
  expect(standinProcesses(rt.root)).toEqual([]);
  expect(mountsBelow(rt.root)).toEqual([]);
}

describe("as an unprivileged user", () => {
  test("run: the workload runs in a VM, as root there; what it writes is the user's on the host; its status comes back", async () => {
    const b = userBundle([
      "sh",
      "-c",
      "cat /proc/sys/kernel/random/boot_id; id -u; echo hello > /data/by-root; exit 3",
    ]);
    const r = await rt.run(["run", "--bundle", b, "nr-run"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(3);
    const [bootId, uid] = r.stdout.trim().split("\n");
    expect(bootId).toMatch(/^[0-9a-f-]{36}$/);
    expect(bootId).not.toBe(HOST_BOOT_ID);
    expect(uid).toBe("0");
    const written = join(b, "rootfs/data/by-root");
    expect(readFileSync(written, "utf8")).toBe("hello\n");
    expect(statSync(written).uid).toBe(user.uid);
    expect(statSync(written).gid).toBe(user.gid);
    nothingLeftOf("nr-run");
  }, 180_000);

  test("a rootless spec's user namespace (the user's own ids): mapped in the guest as the ids the share shows, 0", async () => {
    const script = "cat /proc/self/uid_map /proc/self/gid_map; id -u; echo ns > /data/by-ns-root";
    const b = makeBundle({ args: ["sh", "-c", script], writable: true, rootless: true });
    const config = join(b, "config.json");
    const spec = JSON.parse(readFileSync(config, "utf8"));
    spec.linux.uidMappings = [{ containerID: 0, hostID: user.uid, size: 1 }];
    spec.linux.gidMappings = [{ containerID: 0, hostID: user.gid, size: 1 }];
    writeFileSync(config, JSON.stringify(spec));
    chmodSync(join(b, "rootfs/data"), 0o1777);
    chownTo(user, b);
    const r = await rt.run(["run", "--bundle", b, "nr-userns"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n").map((l) => l.trim().split(/\s+/).join(" "))).toEqual([
      "0 0 1",
      "0 0 1",
      "0",
      "",
    ]);
    expect(statSync(join(b, "rootfs/data/by-ns-root")).uid).toBe(user.uid);
    nothingLeftOf("nr-userns");
  }, 180_000);

  test("create, start, exec (also as another guest user), pause, resume, kill, list --all, delete: QEMU runs as the user", async () => {
    const b = userBundle(["sh", "-c", "echo started > /data/init; sleep 600"]);
    expect((await rt.run(["create", "--bundle", b, "nr-life"])).code).toBe(0);
    const rows = JSON.parse((await rt.run(["list", "--all", "-f", "json"])).stdout);
    const row = rows.find((x: { id: string }) => x.id === "nr-life");
    expect(row.status).toBe("created");
    const qemu = row.vm.hypervisorPid as number;
    expect(qemu).toBeGreaterThan(0);
    expect(hostUid(qemu)).toBe(user.uid);
    expect(hostUid(row.pid)).toBe(user.uid);
    expect((await rt.run(["start", "nr-life"])).code).toBe(0);
    const ex = await rt.run([
      "exec",
      "--user",
      "1000:1000",
      "nr-life",
      "sh",
      "-c",
      "id -u; echo x > /data/by-1000",
    ]);
    expect(ex.stdout.trim()).toBe("1000");
    expect(ex.code).toBe(0);
    // Any guest user's file is the user's on the host (9p security_model=none).
    expect(statSync(join(b, "rootfs/data/by-1000")).uid).toBe(user.uid);
    expect(readFileSync(join(b, "rootfs/data/init"), "utf8")).toBe("started\n");
    // A chown to an id the user's namespace does not map is refused (as runc rootless).
    const chown = await rt.run(["exec", "nr-life", "chown", "1000", "/data/init"]);
    expect(chown.code).not.toBe(0);
    expect((await rt.run(["pause", "nr-life"])).code).toBe(0);
    expect(JSON.parse((await rt.run(["state", "nr-life"])).stdout).status).toBe("paused");
    expect((await rt.run(["resume", "nr-life"])).code).toBe(0);
    expect(JSON.parse((await rt.run(["state", "nr-life"])).stdout).status).toBe("running");
    expect((await rt.run(["kill", "nr-life", "KILL"])).code).toBe(0);
    for (let i = 0; i < 100; i++) {
      if (JSON.parse((await rt.run(["state", "nr-life"])).stdout).status === "stopped") break;
      await Bun.sleep(100);
    }
    expect(JSON.parse((await rt.run(["state", "nr-life"])).stdout).status).toBe("stopped");
    expect((await rt.run(["delete", "nr-life"])).code).toBe(0);
    nothingLeftOf("nr-life");
  }, 240_000);

  test("bind mounts of the user's own directories work (rw and ro); one the user cannot read is an error naming it", async () => {
    const vol = tempDir("cc-oci-vol-");
    const ro = tempDir("cc-oci-vol-");
    writeFileSync(join(ro, "given"), "from the host\n");
    chownTo(user, vol);
    chownTo(user, ro);
    const b = userBundle(
      ["sh", "-c", "cat /ro/given; echo out > /vol/out; (echo no > /ro/no) 2>/dev/null || echo ro-refused"],
      (s) => {
        (s.mounts as unknown[]).push(
          { destination: "/vol", type: "bind", source: vol, options: ["rbind", "rw"] },
          { destination: "/ro", type: "bind", source: ro, options: ["rbind", "ro"] },
        );
      },
    );
    const r = await rt.run(["run", "--bundle", b, "nr-vol"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("from the host\nro-refused\n");
    expect(r.code).toBe(0);
    expect(statSync(join(vol, "out")).uid).toBe(user.uid);
    expect(existsSync(join(ro, "no"))).toBe(false);
    nothingLeftOf("nr-vol");

    const closed = tempDir("cc-oci-vol-"); // root's, 0700
    mkdirSync(join(closed, "inner"), { mode: 0o700 });
    const bad = userBundle(["true"], (s) => {
      (s.mounts as unknown[]).push({
        destination: "/x",
        type: "bind",
        source: join(closed, "inner"),
        options: ["rbind"],
      });
    });
    const n = (JSON.parse(readFileSync(join(bad, "config.json"), "utf8")).mounts as unknown[]).length - 1;
    const failed = await rt.run(["run", "--bundle", bad, "nr-bad"]);
    expect(failed.code).not.toBe(0);
    const line = `field "mounts[${n}].source": ${join(closed, "inner")} cannot be reached (permission denied)`;
    expect(failed.stderr).toContain(line);
    expect(rt.lastLogError()).toContain(line);
    nothingLeftOf("nr-bad");

    chmodSync(closed, 0o755); // now reachable; inner stays root's, 0700
    const unread = await rt.run(["run", "--bundle", bad, "nr-bad"]);
    expect(unread.code).not.toBe(0);
    expect(unread.stderr).toContain(
      `field "mounts[${n}].source": ${join(closed, "inner")} cannot be read by this user`,
    );
    nothingLeftOf("nr-bad");
  }, 240_000);

  test("templating: the template is built and kept under the user's root, and clones start from it", async () => {
    const env = { CC_OCI_TEMPLATE: "1" };
    const b = userBundle(["sh", "-c", "cat /proc/sys/kernel/random/boot_id"]);
    const first = await rt.run(["run", "--bundle", b, "nr-t1"], { env });
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    const keys = readdirSync(join(rt.root, ".templates")).filter((k) => !k.startsWith("."));
    expect(keys.length).toBe(1);
    const snapshot = join(rt.root, ".templates", keys[0] as string, "snapshot");
    expect(statSync(snapshot).uid).toBe(user.uid);
    expect((await rt.run(["create", "--bundle", b, "nr-t2"], { env })).code).toBe(0);
    const row = JSON.parse((await rt.run(["list", "--all", "-f", "json"])).stdout).find(
      (x: { id: string }) => x.id === "nr-t2",
    );
    expect(row.vm.template).toBe(join(rt.root, ".templates", keys[0] as string, "memory"));
    expect(hostUid(row.vm.hypervisorPid)).toBe(user.uid);
    expect((await rt.run(["delete", "--force", "nr-t2"])).code).toBe(0);
    nothingLeftOf("nr-t2");
  }, 300_000);

  test("without --root and without XDG_RUNTIME_DIR: an error naming the directory the user cannot make", async () => {
    const b = userBundle(["true"]);
    const child = Bun.spawnSync(asUser(user, [BIN, "run", "--bundle", b, "nr-noroot"]), {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: user.home },
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(child.exitCode).not.toBe(0);
    expect(child.stderr.toString()).toContain("/run/opencontainer/containers");
  });
});
