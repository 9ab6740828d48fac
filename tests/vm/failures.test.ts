/**
 * Every failure gives a clear error (stderr and the --log error line) and leaves nothing
 * behind, or leaves a container that `state` reports stopped and `delete` removes.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeBundle } from "../lib/bundle.ts";
import { tempDir } from "../lib/cli.ts";
import { qemuProcesses, Runtime } from "../lib/runtime.ts";

const rt = new Runtime();

afterAll(async () => {
  await rt.dispose();
});

function editJson(file: string, edit: (j: Record<string, unknown>) => void): void {
  const j = JSON.parse(readFileSync(file, "utf8"));
  edit(j);
  writeFileSync(file, JSON.stringify(j));
}

async function expectCleanFailure(
  args: string[],
  message: RegExp,
  env?: Record<string, string>,
  runtime = rt,
) {
  const r = await runtime.run(args, { env });
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(message);
  expect(runtime.lastLogError()).toMatch(message);
  expect(runtime.leftovers()).toEqual([]);
  return r;
}

/** A bundle error found before any VM work: in a fresh root, no template was even started. */
async function expectRefusedBeforeVm(args: string[], message: RegExp) {
  const fresh = new Runtime();
  await expectCleanFailure(args, message, { CC_OCI_TEMPLATE: "1" }, fresh);
  expect(existsSync(join(fresh.root, ".templates"))).toBe(false);
  await fresh.dispose();
}

describe("create fails cleanly", () => {
  test("bad config.json", async () => {
    const b = makeBundle({ args: ["true"] });
    editJson(join(b, "config.json"), (j) => {
      (j.process as Record<string, unknown>).args = "not-a-list";
    });
    await expectCleanFailure(["create", "--bundle", b, "badcfg"], /config\.json: field "process\.args"/);
  });

  test("missing rootfs", async () => {
    const b = makeBundle({ args: ["true"] });
    editJson(join(b, "config.json"), (j) => {
      j.root = { path: "no-such-rootfs" };
    });
    await expectRefusedBeforeVm(
      ["create", "--bundle", b, "norootfs"],
      /rootfs .*no-such-rootfs does not exist \(root\.path in .*config\.json\)/,
    );
  });

  test("a rootfs that is a regular file: refused before any VM work", async () => {
    const b = makeBundle({ args: ["true"] });
    writeFileSync(join(b, "rootfs-file"), "not a directory");
    editJson(join(b, "config.json"), (j) => {
      j.root = { path: "rootfs-file" };
    });
    await expectRefusedBeforeVm(
      ["create", "--bundle", b, "filerootfs"],
      /rootfs .*\/rootfs-file is not a directory \(root\.path in .*config\.json\)/,
    );
  });

  test("a missing bind-mount source: refused before any VM work", async () => {
    const b = makeBundle({ args: ["true"] });
    editJson(join(b, "config.json"), (j) => {
      (j.mounts as unknown[]).push({
        destination: "/vol",
        type: "bind",
        source: "/nonexistent/vol",
        options: ["rbind"],
      });
    });
    await expectRefusedBeforeVm(
      ["run", "--bundle", b, "nosource"],
      /config\.json: field "mounts\[\d+\]\.source": \/nonexistent\/vol does not exist/,
    );
  });

  test("missing kernel, missing image", async () => {
    const b = makeBundle({ args: ["true"] });
    editJson(join(b, "vm.json"), (j) => {
      (j.kernel as Record<string, unknown>).path = "/nonexistent/vmlinux";
    });
    await expectCleanFailure(
      ["create", "--bundle", b, "nokernel"],
      /guest kernel \/nonexistent\/vmlinux does not exist/,
    );
    const b2 = makeBundle({ args: ["true"] });
    editJson(join(b2, "vm.json"), (j) => {
      j.image = "/nonexistent/rootfs.erofs";
    });
    await expectCleanFailure(
      ["create", "--bundle", b2, "noimage"],
      /guest image \/nonexistent\/rootfs.erofs does not exist/,
    );
  });

  test("an unknown @TAG@ in hypervisor.args names file:line", async () => {
    const b = makeBundle({ args: ["true"] });
    writeFileSync(
      join(b, "hypervisor.args"),
      `${readFileSync(join(b, "hypervisor.args"), "utf8")}\n@NO_SUCH_TAG@\n`,
    );
    await expectCleanFailure(
      ["create", "--bundle", b, "badtag"],
      /hypervisor\.args:\d+: unknown tag @NO_SUCH_TAG@/,
    );
  });

  test("QEMU that fails to start: its own message is in the error", async () => {
    const b = makeBundle({ args: ["true"] });
    writeFileSync(
      join(b, "hypervisor.args"),
      `${readFileSync(join(b, "hypervisor.args"), "utf8")}\n-no-such-qemu-option\n`,
    );
    await expectCleanFailure(["create", "--bundle", b, "badqemu"], /hypervisor exited.*no-such-qemu-option/);
  }, 60_000);

  test("a failed create returns as soon as the error is known (no wait on the stand-in)", async () => {
    const b = makeBundle({ args: ["true"] });
    writeFileSync(
      join(b, "hypervisor.args"),
      `${readFileSync(join(b, "hypervisor.args"), "utf8")}\n-no-such-qemu-option\n`,
    );
    // Without a template the error comes from the stand-in, which starts QEMU itself.
    const t0 = Date.now();
    await expectCleanFailure(["create", "--bundle", b, "fastfail"], /no-such-qemu-option/, {
      CC_OCI_TEMPLATE: "0",
    });
    expect(Date.now() - t0).toBeLessThan(3_000);
  }, 60_000);

  test("a guest that fails to boot (init cannot mount its root): error with the console tail", async () => {
    const b = makeBundle({ args: ["true"] });
    editJson(join(b, "vm.json"), (j) => {
      const k = j.kernel as Record<string, unknown>;
      k.parameters = `${k.parameters} cc.root=/dev/nonexistent`;
    });
    // Through a template build (templating is on by default): the error comes when the
    // guest powers off, not at the end of the boot bound (60 s under TCG).
    const t0 = Date.now();
    await expectCleanFailure(["create", "--bundle", b, "panics"], /cc-init: FATAL/);
    expect(Date.now() - t0).toBeLessThan(30_000);
  }, 120_000);

  test("a guest that never comes up: bounded wait, clear error", async () => {
    const b = makeBundle({ args: ["true"] });
    editJson(join(b, "vm.json"), (j) => {
      const k = j.kernel as Record<string, unknown>;
      k.parameters = `${k.parameters} cc.init="/bin/sleep 1000"`;
    });
    const t0 = Date.now();
    await expectCleanFailure(["create", "--bundle", b, "hangs"], /did not come up within 4000 ms/, {
      CC_OCI_BOOT_TIMEOUT_MS: "4000",
    });
    expect(Date.now() - t0).toBeLessThan(40_000);
  }, 120_000);

  test("a failing createRuntime hook", async () => {
    const b = makeBundle({
      args: ["true"],
      edit: (s) => {
        s.hooks = { createRuntime: [{ path: "/bin/sh", args: ["sh", "-c", "echo hook-broke >&2; exit 3"] }] };
      },
    });
    await expectCleanFailure(
      ["create", "--bundle", b, "badhook"],
      /createRuntime hook \/bin\/sh failed: exit status 3: hook-broke/,
    );
  }, 120_000);

  test("a container id that is not allowed", async () => {
    await expectCleanFailure(
      ["create", "--bundle", makeBundle({ args: ["true"] }), "../x"],
      /invalid container id/,
    );
  });

  test("an id longer than a state directory's name can be: refused, stating the limit", async () => {
    await expectCleanFailure(
      ["create", "--bundle", makeBundle({ args: ["true"] }), "x".repeat(256)],
      /invalid container id "x+": longer than 255 characters/,
    );
  });
});

describe("things killed under a container", () => {
  test("killed stand-in: the VM goes too, state says stopped, delete removes all", async () => {
    const b = makeBundle({ args: ["sleep", "1000"] });
    const pidFile = join(tempDir(), "pid");
    expect((await rt.run(["create", "--bundle", b, "--pid-file", pidFile, "killstandin"])).code).toBe(0);
    const pid = Number(readFileSync(pidFile, "utf8"));
    // This root's VMs only: other test processes may be starting theirs meanwhile.
    expect(qemuProcesses(rt.root)).toHaveLength(1);
    process.kill(pid, "SIGKILL");
    await Bun.sleep(1000);
    expect(qemuProcesses(rt.root)).toEqual([]);
    const st = JSON.parse((await rt.run(["state", "killstandin"])).stdout);
    expect(st.status).toBe("stopped");
    expect((await rt.run(["delete", "killstandin"])).code).toBe(0);
    expect(rt.leftovers()).toEqual([]);
  }, 120_000);

  test("killed QEMU: the stand-in exits 137, state says stopped, delete removes all", async () => {
    const b = makeBundle({ args: ["sleep", "1000"] });
    const pidFile = join(tempDir(), "pid");
    expect((await rt.run(["create", "--bundle", b, "--pid-file", pidFile, "killqemu"])).code).toBe(0);
    expect((await rt.run(["start", "killqemu"])).code).toBe(0);
    const stored = JSON.parse(readFileSync(join(rt.root, "killqemu", "state.json"), "utf8"));
    process.kill(stored.vm.qemu.pid, "SIGKILL");
    for (
      let i = 0;
      i < 100 && JSON.parse((await rt.run(["state", "killqemu"])).stdout).status !== "stopped";
      i++
    )
      await Bun.sleep(100);
    expect(JSON.parse((await rt.run(["state", "killqemu"])).stdout).status).toBe("stopped");
    expect(JSON.parse(readFileSync(join(rt.root, "killqemu", "state.json"), "utf8")).exitStatus).toBe(137);
    expect((await rt.run(["delete", "killqemu"])).code).toBe(0);
    expect(rt.leftovers()).toEqual([]);
    rmSync(pidFile, { force: true });
  }, 120_000);
});
