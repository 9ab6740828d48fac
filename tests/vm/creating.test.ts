/**
 * A container while it is being created, and a create that is killed (safety issue, items
 * 2 and 3; runtime-spec runtime.md "creating"): `state` says creating, plain `delete` and
 * `start` are refused, `delete -f` tears it down, and a killed create leaves no VM running
 * and no id stuck.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { mountsBelow } from "../../src/sys/mounts.ts";
import { makeBundle } from "../lib/bundle.ts";
import { qemuProcesses, Runtime } from "../lib/runtime.ts";

const rt = new Runtime();
const cold = { CC_OCI_TEMPLATE: "0" };

/** Host processes (stand-ins, QEMUs, template builds) working in this test's root. */
function processesUnderRoot(): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readlinkSync(`/proc/${name}/cwd`).startsWith(`${rt.root}/`)) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

function startCreate(id: string, env: Record<string, string>) {
  const bundle = makeBundle({ args: ["sleep", "1000"] });
  return Bun.spawn(rt.argv(["create", "--bundle", bundle, id]), {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
    env: { ...process.env, ...env },
  });
}

async function state(id: string): Promise<{ code: number; status?: string; pid?: number; stderr: string }> {
  const r = await rt.run(["state", id]);
  if (r.code !== 0) return { code: r.code, stderr: r.stderr };
  const s = JSON.parse(r.stdout) as { status: string; pid: number };
  return { code: 0, status: s.status, pid: s.pid, stderr: r.stderr };
}

/** Waits until `state` answers with a status (the state exists from create's first step). */
async function waitForState(id: string, want: (s: string) => boolean, ms = 60_000): Promise<string> {
  const until = Date.now() + ms;
  let last = "";
  while (Date.now() < until) {
    const s = await state(id);
    last = s.status ?? s.stderr;
    if (s.status && want(s.status)) return s.status;
    await Bun.sleep(50);
  }
  throw new Error(`state of ${id} never matched; last: ${last}`);
}

async function expectNothingLeft(): Promise<void> {
  for (let i = 0; i < 100 && processesUnderRoot().length > 0; i++) await Bun.sleep(100);
  expect(processesUnderRoot()).toEqual([]);
  expect(rt.leftovers()).toEqual([]);
  expect(mountsBelow(rt.root)).toEqual([]);
}

afterAll(async () => {
  await rt.dispose();
});

describe("runtime-spec: state while creating", () => {
  test("state says creating; plain delete and start are refused; then it is created", async () => {
    const child = startCreate("c1", cold);
    // The first status `state` reports for it is creating (never stopped, pid 0).
    expect(await waitForState("c1", () => true)).toBe("creating");
    const del = await rt.run(["delete", "c1"]);
    expect(del.code).toBe(1);
    expect(del.stderr).toMatch(/cannot delete container "c1": it is creating/);
    const start = await rt.run(["start", "c1"]);
    expect(start.code).toBe(1);
    expect(start.stderr).toMatch(/cannot start container "c1": it is creating/);
    expect(await child.exited).toBe(0);
    const done = await state("c1");
    expect(done.status).toBe("created");
    expect(done.pid).toBeGreaterThan(0);
    expect((await rt.run(["delete", "-f", "c1"])).code).toBe(0);
    await expectNothingLeft();
  }, 180_000);

  test("delete -f while creating tears it down; the create call fails", async () => {
    const child = startCreate("c2", cold);
    await waitForState("c2", (s) => s === "creating");
    await Bun.sleep(500);
    const del = await rt.run(["delete", "-f", "c2"]);
    expect(del.stderr).toBe("");
    expect(del.code).toBe(0);
    expect(await child.exited).not.toBe(0);
    expect((await state("c2")).stderr).toMatch(/container "c2" does not exist/);
    await expectNothingLeft();
  }, 180_000);
});

describe("a killed create", () => {
  test("killed while its VM boots: the stand-in tears the VM down; the id is not stuck", async () => {
    const child = startCreate("k1", cold);
    await waitForState("k1", (s) => s === "creating");
    // Until create has recorded its stand-in, then into the boot.
    const stored = () => readFileSync(join(rt.root, "k1", "state.json"), "utf8");
    for (let i = 0; i < 300 && !stored().includes('"standin"'); i++) await Bun.sleep(20);
    expect(stored()).toContain('"standin"');
    await Bun.sleep(1500);
    child.kill("SIGKILL");
    await child.exited;
    await waitForState("k1", (s) => s === "stopped", 20_000);
    for (let i = 0; i < 100 && processesUnderRoot().length > 0; i++) await Bun.sleep(100);
    expect(processesUnderRoot()).toEqual([]);
    expect((await rt.run(["delete", "k1"])).code).toBe(0);
    await expectNothingLeft();
    // The same id works again.
    const again = await rt.run(["run", "--bundle", makeBundle({ args: ["true"] }), "k1"], { env: cold });
    expect(again.code).toBe(0);
    await expectNothingLeft();
  }, 240_000);

  test("killed while it builds a template (before any stand-in): stopped, deletable, no VM left", async () => {
    const child = startCreate("k2", { CC_OCI_TEMPLATE: "1" });
    expect(await waitForState("k2", () => true)).toBe("creating");
    // The template build's QEMU is running under <root>/.templates.
    for (let i = 0; i < 200 && processesUnderRoot().length === 0; i++) await Bun.sleep(50);
    expect(processesUnderRoot().length).toBeGreaterThan(0);
    child.kill("SIGKILL");
    await child.exited;
    expect(await waitForState("k2", (s) => s === "stopped", 10_000)).toBe("stopped");
    expect((await rt.run(["delete", "k2"])).code).toBe(0);
    await expectNothingLeft();
  }, 180_000);
});

describe("a VM that dies while create runs its hooks", () => {
  test("create fails naming it; the stand-in did not write the state; nothing is left", async () => {
    const bundle = makeBundle({
      args: ["sleep", "1000"],
      edit: (spec) => {
        spec.hooks = { prestart: [{ path: "/bin/sh", args: ["sh", "-c", "sleep 4"] }] };
      },
    });
    const child = Bun.spawn(rt.argv(["create", "--bundle", bundle, "h1"]), {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
      env: { ...process.env, ...cold },
    });
    // Until the stand-in reported (its VM is up): the hook is running then.
    await waitForState("h1", (s) => s === "creating");
    const stored = () => readFileSync(join(rt.root, "h1", "state.json"), "utf8");
    for (let i = 0; i < 1200 && !stored().includes('"qemu"'); i++) await Bun.sleep(50);
    expect(await state("h1")).toMatchObject({ status: "creating" });
    const qemu = qemuProcesses(rt.root);
    expect(qemu.length).toBe(1);
    process.kill(qemu[0] as number, "SIGKILL");
    expect(await child.exited).toBe(1);
    expect(await new Response(child.stderr).text()).toMatch(/the container's VM exited during create/);
    expect((await state("h1")).stderr).toMatch(/container "h1" does not exist/);
    await expectNothingLeft();
  }, 180_000);
});
