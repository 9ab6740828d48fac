/** What crun in the guest is given, from the bundle's config.json (runtime-spec config.md). */
import { describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { OciConfig } from "../../src/config/oci-schema.ts";
import { vmSize } from "../../src/hypervisor/launcher.ts";
import { cpusetCpus, GUEST_RESERVE_MIB, guestConfig } from "../../src/lifecycle/guest-config.ts";
import { runCli, tempDir } from "../lib/cli.ts";

function base(edit: (c: Record<string, unknown> & { linux: Record<string, unknown> }) => void = () => {}) {
  const c = {
    ociVersion: "1.0.2",
    process: { args: ["sh"], cwd: "/" },
    root: { path: "rootfs" },
    linux: {} as Record<string, unknown>,
  };
  edit(c as never);
  return c as unknown as OciConfig;
}

function run(oci: OciConfig, vcpus = 1) {
  const notes: string[] = [];
  const out = guestConfig(oci, "c1", "/b/rootfs", { vcpus, memoryMiB: 256, note: (m) => notes.push(m) });
  return { ...out, notes, linux: out.config.linux as Record<string, unknown> };
}

describe("guest config", () => {
  test("a user's container: its own host uid/gid in the mappings become 0 (what the share shows it as)", () => {
    const oci = base((c) => {
      c.linux.uidMappings = [{ containerID: 0, hostID: 1234, size: 1 }];
      c.linux.gidMappings = [{ containerID: 0, hostID: 99, size: 1 }];
    });
    const ctx = { vcpus: 1, memoryMiB: 256, note: () => {}, ownIds: { uid: 1234, gid: 99 } };
    const linux = guestConfig(oci, "c1", "/b/rootfs", ctx).config.linux as Record<string, unknown>;
    expect(linux.uidMappings).toEqual([{ containerID: 0, hostID: 0, size: 1 }]);
    expect(linux.gidMappings).toEqual([{ containerID: 0, hostID: 0, size: 1 }]);
    // As root the host ids are the guest's (passthrough): unchanged.
    expect(run(oci).linux.uidMappings).toEqual([{ containerID: 0, hostID: 1234, size: 1 }]);
    const other = base((c) => (c.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }]));
    expect(() => guestConfig(other, "c1", "/b/rootfs", ctx)).toThrow(
      'field "linux.uidMappings[0]": host ids 100000-165535 cannot be mapped: a user\'s container maps only its own uid 1234 (size 1)',
    );
  });

  test("runtime-spec config-linux memory.kernel (deprecated, may be ignored): dropped with a note", () => {
    const g = run(
      base((c) => (c.linux.resources = { memory: { limit: 1 << 26, kernel: 1 << 25, kernelTCP: 1 } })),
    );
    expect(g.linux.resources).toEqual({ memory: { limit: 1 << 26 } });
    expect(g.notes.join("\n")).toMatch(/memory\.kernel ignored/);
    expect(g.notes.join("\n")).toMatch(/memory\.kernelTCP ignored/);
  });

  test("a cpuset is the host's (the VM is pinned and sized by it): not in the guest; a bad list is an error naming the field", () => {
    const g = run(
      base((c) => (c.linux.resources = { cpu: { cpus: "2-3", mems: "0", shares: 512 } })),
      2,
    );
    expect((g.linux.resources as { cpu?: unknown }).cpu).toEqual({ shares: 512 });
    expect(g.notes.join("\n")).toMatch(/cpu\.cpus "2-3" applied on the host \(the VM has 2 vCPUs\)/);
    expect(() => run(base((c) => (c.linux.resources = { cpu: { cpus: "x" } })))).toThrow(/is not a CPU list/);
    expect(cpusetCpus("0-2,5")).toEqual([0, 1, 2, 5]);
  });

  test("apparmorProfile and selinuxLabel: not applied, and said so (no LSM in the guest)", () => {
    const oci = base();
    (oci.process as Record<string, unknown>).apparmorProfile = "docker-default";
    (oci.process as Record<string, unknown>).selinuxLabel = "system_u:system_r:container_t:s0";
    const g = run(oci);
    expect(g.config.process).not.toHaveProperty("apparmorProfile");
    expect(g.config.process).not.toHaveProperty("selinuxLabel");
    expect(g.notes.join("\n")).toMatch(/apparmorProfile "docker-default" not applied/);
    expect(g.notes.join("\n")).toMatch(/selinuxLabel .* not applied/);
  });

  test("a bind mount keeps its source's name as the last component of its path in the share", () => {
    const dir = tempDir();
    mkdirSync(join(dir, "volume-name"));
    writeFileSync(join(dir, "resolv.conf"), "");
    const oci = base();
    oci.mounts = [
      { destination: "/data", type: "bind", source: join(dir, "volume-name"), options: ["rbind"] },
      {
        destination: "/etc/resolv.conf",
        type: "bind",
        source: join(dir, "resolv.conf"),
        options: ["bind", "ro"],
      },
    ];
    const g = run(oci);
    expect(g.shares.map((s) => s.target)).toEqual(["rootfs", "mounts/0/volume-name", "mounts/1/resolv.conf"]);
    expect((g.config.mounts as { source: string }[]).map((m) => m.source)).toEqual([
      "/run/cc/shared/mounts/0/volume-name",
      "/run/cc/shared/mounts/1/resolv.conf",
    ]);
  });

  test("a source spelled with .. or . is named by the directory it is", () => {
    const dir = tempDir();
    mkdirSync(join(dir, "vol", "sub"), { recursive: true });
    const oci = base();
    oci.mounts = [
      { destination: "/a", type: "bind", source: `${join(dir, "vol", "sub")}/..`, options: ["rbind"] },
      { destination: "/b", type: "bind", source: `${join(dir, "vol")}/.`, options: ["rbind"] },
    ];
    expect(run(oci).shares.map((s) => s.target)).toEqual(["rootfs", "mounts/0/vol", "mounts/1/vol"]);
  });
});

describe("memory and the OOM killer in the guest", () => {
  const MIB = 1024 * 1024;
  test("no limit: the container's cgroup is bounded at the VM's memory minus the guest's reserve", () => {
    const g = run(base());
    expect((g.linux.resources as { memory: { limit: number } }).memory.limit).toBe(
      (256 - GUEST_RESERVE_MIB) * MIB,
    );
  });
  test("a smaller limit is kept; a larger one is bounded, with a note", () => {
    const small = base();
    (small.linux as Record<string, unknown>).resources = { memory: { limit: 64 * MIB } };
    expect((run(small).linux.resources as { memory: { limit: number } }).memory.limit).toBe(64 * MIB);
    const big = base();
    (big.linux as Record<string, unknown>).resources = { memory: { limit: 2048 * MIB } };
    const g = run(big);
    expect((g.linux.resources as { memory: { limit: number } }).memory.limit).toBe(
      (256 - GUEST_RESERVE_MIB) * MIB,
    );
    expect(g.notes.join("\n")).toMatch(/memory.limit 2147483648 is more than the VM can give/);
  });
  test("a process that gives no oomScoreAdj gets 0 (not the agent's -1000); one given is kept", () => {
    expect((run(base()).config.process as { oomScoreAdj: number }).oomScoreAdj).toBe(0);
    const given = base();
    (given.process as Record<string, unknown>).oomScoreAdj = 500;
    expect((run(given).config.process as { oomScoreAdj: number }).oomScoreAdj).toBe(500);
  });
});

describe("flags a VM cannot honour", () => {
  test("--preserve-fds N > 0 is an error (create and exec); 0 is fine", async () => {
    const root = tempDir();
    const create = await runCli(["--root", root, "create", "--preserve-fds", "2", "--bundle", root, "c1"]);
    expect(create.code).toBe(1);
    expect(create.stderr).toMatch(
      /--preserve-fds 2: host file descriptors cannot be passed into the container's VM/,
    );
    const exec = await runCli(["--root", root, "exec", "--preserve-fds", "1", "c1", "true"]);
    expect(exec.code).toBe(255);
    expect(exec.stderr).toMatch(/--preserve-fds 1: host file descriptors cannot be passed/);
    const zero = await runCli(["--root", root, "create", "--preserve-fds", "0", "--bundle", root, "c1"]);
    expect(zero.stderr).not.toMatch(/preserve-fds/);
  });

  test("--no-pivot and --no-new-keyring are logged as accepted with no effect", async () => {
    const root = tempDir();
    const log = join(root, "log");
    await runCli([
      "--root",
      root,
      "--debug",
      "--log",
      log,
      "create",
      "--no-pivot",
      "--no-new-keyring",
      "--bundle",
      root,
      "c1",
    ]);
    const text = await Bun.file(log).text();
    expect(text).toMatch(/option --no-pivot accepted, has no effect here/);
    expect(text).toMatch(/option --no-new-keyring accepted, has no effect here/);
  });
});

describe("the VM's size, as QEMU reads its arguments (list --all VCPUS and MEMORY)", () => {
  test("the last -m and -smp win, in their several spellings", () => {
    expect(vmSize(["-m", "256", "-smp", "1"])).toEqual({ vcpus: 1, memoryMiB: 256 });
    expect(vmSize(["-m", "256", "-smp", "1", "-smp", "2", "-m", "1G"])).toEqual({
      vcpus: 2,
      memoryMiB: 1024,
    });
    expect(vmSize(["-smp", "cpus=4,sockets=1", "-m", "size=512M,maxmem=1G"])).toEqual({
      vcpus: 4,
      memoryMiB: 512,
    });
  });
});
