/**
 * src/sys/tap.ts: a tap opened in the container's namespace exists as long as an fd on it
 * is open (ours, or QEMU's inherited copy) and disappears with the last one: the fault
 * cleanup. Needs root; runs in network namespaces of its own.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { closeSync, readFileSync, readlinkSync } from "node:fs";
import { libc } from "../../src/sys/libc.ts";
import { dumpLinks } from "../../src/sys/netlink-link.ts";
import { openTap } from "../../src/sys/tap.ts";
import { IS_ROOT, inNetns, TestNamespaces } from "../lib/netns.ts";

const F_GETFD = 1;
const FD_CLOEXEC = 1;
const namespaces = new TestNamespaces("tap");
let ns = "";

beforeAll(() => {
  if (IS_ROOT) ns = namespaces.add("c");
});
afterAll(() => namespaces.removeAll());

const linkNames = () => inNetns(ns, () => dumpLinks().map((l) => l.name));

/** Polls until cond() holds or about two seconds pass. */
async function eventually(cond: () => boolean): Promise<boolean> {
  for (let i = 0; i < 200 && !cond(); i++) await Bun.sleep(10);
  return cond();
}

describe.skipIf(!IS_ROOT)("openTap (needs root)", () => {
  test("a tap in the namespace, down, close-on-exec; gone when its fd closes", () => {
    const fd = inNetns(ns, () => openTap("cctap0"));
    try {
      const link = inNetns(ns, () => dumpLinks().find((l) => l.name === "cctap0"));
      expect(link).toMatchObject({ name: "cctap0", kind: "tun", up: false, loopback: false });
      expect(link?.mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
      expect(readlinkSync(`/proc/self/fd/${fd}`)).toBe("/dev/net/tun");
      expect(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8")).toContain("iff:\tcctap0");
      expect(libc().fcntl(fd, F_GETFD, 0) & FD_CLOEXEC).toBe(FD_CLOEXEC);
      // Not in the machine's own namespace.
      expect(dumpLinks().some((l) => l.name === "cctap0")).toBe(false);
    } finally {
      closeSync(fd);
    }
    expect(linkNames()).not.toContain("cctap0");
  });

  test("a name in use is refused (never attached to), and a bad name says why", () => {
    const fd = inNetns(ns, () => openTap("cctap1"));
    try {
      expect(() => inNetns(ns, () => openTap("cctap1"))).toThrow(
        "tap cctap1: ioctl(TUNSETIFF): Device or resource busy (EBUSY)",
      );
      // The veth-like name of a device that is no tap: refused the same way.
      expect(() => inNetns(ns, () => openTap("lo"))).toThrow("tap lo: ioctl(TUNSETIFF):");
    } finally {
      closeSync(fd);
    }
    expect(() => openTap("a-name-of-16-byt")).toThrow(
      "tap a-name-of-16-byt: not a valid interface name (1 to 15 bytes, no space, / or :)",
    );
    expect(() => openTap("")).toThrow("not a valid interface name");
  });

  test("handed down as QEMU gets it (spawn stdio array): lives while the child holds it", async () => {
    const fd = inNetns(ns, () => openTap("cctap2"));
    const child = spawn("sleep", ["60"], { stdio: ["ignore", "ignore", "ignore", fd] });
    const exited = new Promise((resolve) => child.on("exit", resolve));
    try {
      const holds = () => {
        try {
          return readFileSync(`/proc/${child.pid}/fdinfo/3`, "utf8").includes("iff:\tcctap2");
        } catch {
          return false; // not yet in place
        }
      };
      expect(await eventually(holds)).toBe(true);
      // The child's copy is not close-on-exec (dup2 into place clears the flag): sleep has it.
      expect(readlinkSync(`/proc/${child.pid}/fd/3`)).toBe("/dev/net/tun");
    } finally {
      closeSync(fd);
    }
    expect(linkNames()).toContain("cctap2");
    child.kill("SIGKILL");
    await exited;
    expect(await eventually(() => !linkNames().includes("cctap2"))).toBe(true);
  });
});
