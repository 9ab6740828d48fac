/**
 * QEMU runs confined: a seccomp filter (`-sandbox on,...`, from the shipped hypervisor.args)
 * and only the capabilities its 9p server needs; the guest still boots and writes its files, cold and from a template (which QEMU saves and loads without
 * spawning anything: spawn=deny).
 */
import { afterAll, expect, test } from "bun:test";
import { chmodSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { QEMU_CAPABILITIES } from "../../src/hypervisor/launcher.ts";
import { makeBundle } from "../lib/bundle.ts";
import { tempDir } from "../lib/cli.ts";
import { HOST_BOOT_ID, Runtime } from "../lib/runtime.ts";

const rt = new Runtime();

afterAll(async () => {
  await rt.dispose();
});

/** The container's QEMU: its arguments and the fields of its /proc/PID/status. */
function qemuOf(id: string): { args: string[]; status: Record<string, string> } {
  const state = JSON.parse(readFileSync(join(rt.root, id, "state.json"), "utf8"));
  const proc = `/proc/${state.vm.qemu.pid}`;
  const text = readFileSync(`${proc}/status`, "utf8");
  return {
    args: readFileSync(`${proc}/cmdline`, "utf8").split("\0"),
    status: Object.fromEntries(text.split("\n").map((l) => l.split(/:\s*/, 2) as [string, string])),
  };
}

for (const [how, env] of [
  ["cold boot", { CC_OCI_TEMPLATE: "0" }],
  ["from a template", { CC_OCI_TEMPLATE: "1" }],
] as const) {
  test(`${how}: the guest boots and QEMU runs under its seccomp filter`, async () => {
    const id = how === "cold boot" ? "sandcold" : "sandtemplate";
    // As user 1000, through 9p: QEMU creates the file and gives it to its owner (CAP_CHOWN).
    const b = makeBundle({
      args: ["sh", "-c", "echo mine >/data/made; cat /proc/sys/kernel/random/boot_id; sleep 1000"],
      writable: true,
      edit: (s) => {
        s.process.user = { uid: 1000, gid: 1000 };
      },
    });
    chmodSync(join(b, "rootfs/data"), 0o777);
    const out = join(tempDir(), "out");
    const child = Bun.spawn(rt.argv(["run", "-d", "--bundle", b, id]), {
      stdout: Bun.file(out),
      env: { ...process.env, ...env },
    });
    expect(await child.exited).toBe(0);
    const { args, status } = qemuOf(id);
    expect(args.includes("-incoming")).toBe(how === "from a template");
    expect(status.Seccomp).toBe("2");
    expect(status.NoNewPrivs).toBe("1");
    // No capability but those its 9p server needs (none of SYS_ADMIN, NET_ADMIN, PTRACE...).
    const kept = Object.values(QEMU_CAPABILITIES).reduce((m, c) => m | (1n << BigInt(c)), 0n);
    for (const set of ["CapPrm", "CapEff", "CapBnd"]) expect(BigInt(`0x${status[set]}`)).toBe(kept);
    for (let i = 0; i < 100 && !readFileSync(out, "utf8"); i++) await Bun.sleep(100);
    const bootId = readFileSync(out, "utf8").trim();
    expect(bootId).toMatch(/^[0-9a-f-]{36}$/);
    expect(bootId).not.toBe(HOST_BOOT_ID);
    const made = join(b, "rootfs/data/made");
    expect(readFileSync(made, "utf8")).toBe("mine\n");
    expect(statSync(made).uid).toBe(1000);
    expect((await rt.run(["delete", "--force", id])).code).toBe(0);
  }, 180_000);
}

test("the guest kernel runs with its CPU vulnerability mitigations on", async () => {
  const vulnerabilities = "/sys/devices/system/cpu/vulnerabilities";
  const b = makeBundle({ args: ["sh", "-c", `cat /proc/cmdline; grep -H . ${vulnerabilities}/*`] });
  const r = await rt.run(["run", "--bundle", b, "mitigated"]);
  expect(r.code).toBe(0);
  const [cmdline, ...states] = r.stdout.trim().split("\n");
  expect(cmdline).not.toContain("mitigations=off");
  // Each is "Not affected" or "Mitigation: ..."; mitigations=off leaves spectre_v1/v2 "Vulnerable".
  expect(states.length).toBeGreaterThan(5);
  expect(states.filter((l) => /:Vulnerable/.test(l))).toEqual([]);
}, 120_000);
