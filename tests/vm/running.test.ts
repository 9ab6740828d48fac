/**
 * A running container in its VM: exec (exit codes, stdio, settings, a tty, many at once,
 * detached), ps, pause/resume, update, events --stats, list --all. One container, one boot.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { receiveFdServer } from "../../src/sys/fdpass.ts";
import { fdReader, fdWriter } from "../../src/sys/fdstream.ts";
import { makeBundle } from "../lib/bundle.ts";
import { tempDir } from "../lib/cli.ts";
import { Runtime } from "../lib/runtime.ts";

const rt = new Runtime();
const ID = "busy";
const out = join(tempDir(), "ticks.log");

beforeAll(async () => {
  const bundle = makeBundle({
    args: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"],
    writable: true,
  });
  const child = Bun.spawn(rt.argv(["run", "-d", "--bundle", bundle, ID]), {
    stdin: "ignore",
    stdout: Bun.file(out),
    stderr: "inherit",
  });
  expect(await child.exited).toBe(0);
}, 180_000);

afterAll(async () => {
  await rt.dispose();
});

const size = () => statSync(out).size;

describe("exec", () => {
  test("exit codes, stdout and stdin", async () => {
    expect((await rt.run(["exec", ID, "sh", "-c", "exit 5"])).code).toBe(5);
    const ok = await rt.run(["exec", ID, "sh", "-c", "echo from-exec; echo to-err >&2"]);
    expect(ok).toMatchObject({ code: 0, stdout: "from-exec\n", stderr: "to-err\n" });
    expect((await rt.run(["exec", ID, "cat"], { stdin: "exec stdin\n" })).stdout).toBe("exec stdin\n");
  }, 120_000);

  test("env, cwd, user and groups", async () => {
    const r = await rt.run([
      "exec",
      "-e",
      "X=from-flag",
      "--cwd",
      "/tmp",
      "-u",
      "1000:1000",
      "-g",
      "2001",
      ID,
      "sh",
      "-c",
      "echo $X; pwd; id -u; id -G",
    ]);
    expect(r.stdout.trim().split("\n")).toEqual(["from-flag", "/tmp", "1000", "1000 2001"]);
  }, 60_000);

  test("a command that does not exist: the runtime's error, exit 255", async () => {
    const r = await rt.run(["exec", ID, "/no/such/program"]);
    expect(r.code).toBe(255);
    expect(rt.lastLogError()).toBeTruthy();
  }, 60_000);

  test("five at once", async () => {
    const rs = await Promise.all(
      [1, 2, 3, 4, 5].map((n) => rt.run(["exec", ID, "sh", "-c", `echo n=${n}; exit ${n}`])),
    );
    rs.forEach((r, i) => {
      expect(r.stdout).toBe(`n=${i + 1}\n`);
      expect(r.code).toBe(i + 1);
    });
  }, 120_000);

  test("a tty through a console-socket receiver; exit status comes back", async () => {
    const sock = join(tempDir(), "exec-console.sock");
    const server = receiveFdServer(sock);
    const running = rt.run(["exec", "-t", "--console-socket", sock, ID, "sh"]);
    const got = await server.accept(60_000);
    server.close();
    const writer = fdWriter(got.fd, { autoClose: false });
    let text = "";
    const reading = (async () => {
      for await (const chunk of fdReader(got.fd)) {
        text += new TextDecoder().decode(chunk);
        if (text.includes("ANSWER=42")) break;
      }
    })();
    await writer.write(new TextEncoder().encode("echo ANSWER=$((6*7)); tty\n"));
    await Promise.race([reading, Bun.sleep(30_000)]);
    expect(text).toContain("ANSWER=42");
    await writer.write(new TextEncoder().encode("exit 3\n"));
    expect((await running).code).toBe(3);
    closeSync(got.fd);
  }, 120_000);

  test("detached exec: its stand-in is in --pid-file and in ps -f json; gone when it ends", async () => {
    const pidFile = join(tempDir(), "exec.pid");
    expect((await rt.run(["exec", "-d", "--pid-file", pidFile, ID, "sleep", "3"])).code).toBe(0);
    const pid = Number(readFileSync(pidFile, "utf8"));
    const ps = await rt.run(["ps", "-f", "json", ID]);
    const pids = JSON.parse(ps.stdout) as number[];
    const state = JSON.parse((await rt.run(["state", ID])).stdout);
    expect(pids).toContain(state.pid);
    expect(pids).toContain(pid);
    for (const p of pids) expect(readFileSync(`/proc/${p}/cmdline`, "utf8")).toContain("__standin");
    const table = await rt.run(["ps", ID]);
    expect(table.stdout.split("\n")[0]).toMatch(/^PID\s+USER\s+TIME\s+CMD$/);
    expect(table.stdout).toContain("sleep 3");
    for (let i = 0; i < 100; i++) {
      if (JSON.parse((await rt.run(["ps", "-f", "json", ID])).stdout).length === 1) break;
      await Bun.sleep(200);
    }
    expect(JSON.parse((await rt.run(["ps", "-f", "json", ID])).stdout)).toEqual([state.pid]);
    expect(readdirSync(join(rt.root, ID, "execs"))).toEqual([]);
  }, 120_000);
});

describe("pause and resume", () => {
  test("pause stops the ticking workload; resume continues it; exec on a paused container is an error", async () => {
    expect((await rt.run(["pause", ID])).code).toBe(0);
    expect(JSON.parse((await rt.run(["state", ID])).stdout).status).toBe("paused");
    const frozen = size();
    await Bun.sleep(1500);
    expect(size()).toBe(frozen);
    const ex = await rt.run(["exec", ID, "true"]);
    expect(ex.code).toBe(255);
    expect(ex.stderr).toContain("it is paused");
    expect((await rt.run(["pause", ID])).code).toBe(1);
    expect((await rt.run(["resume", ID])).code).toBe(0);
    expect(JSON.parse((await rt.run(["state", ID])).stdout).status).toBe("running");
    await Bun.sleep(1500);
    expect(size()).toBeGreaterThan(frozen);
  }, 60_000);
});

describe("update, events, list --all", () => {
  test("update --memory changes memory.max seen inside; beyond the VM's memory is refused", async () => {
    expect((await rt.run(["update", "--memory", "67108864", ID])).code).toBe(0);
    expect((await rt.run(["exec", ID, "cat", "/sys/fs/cgroup/memory.max"])).stdout.trim()).toBe("67108864");
    expect((await rt.run(["update", "--resources", "-", ID], { stdin: '{"pids":{"limit":77}}' })).code).toBe(
      0,
    );
    expect((await rt.run(["exec", ID, "cat", "/sys/fs/cgroup/pids.max"])).stdout.trim()).toBe("77");
    const big = await rt.run(["update", "--memory", String(8 * 1024 ** 3), ID]);
    expect(big.code).toBe(1);
    expect(big.stderr).toContain("exceeds the VM's memory");
    // Within the VM's 256 MiB, but into what the guest keeps for itself.
    const reserve = await rt.run(["update", "--memory", String(200 * 1024 ** 2), ID]);
    expect(reserve.code).toBe(1);
    expect(reserve.stderr).toMatch(/exceeds the VM's memory \(256 MiB, of which 160 MiB the guest keeps\)/);
  }, 120_000);

  test("events --stats prints one runc-style stats record", async () => {
    const r = await rt.run(["events", "--stats", ID]);
    expect(r.code).toBe(0);
    const ev = JSON.parse(r.stdout);
    expect(ev.type).toBe("stats");
    expect(ev.id).toBe(ID);
    expect(ev.data.memory.usage.usage).toBeGreaterThan(0);
    expect(ev.data.pids.current).toBeGreaterThanOrEqual(1);
    expect(ev.data.cpu.usage.total).toBeGreaterThan(0);
    expect(ev.data.vm.rssBytes).toBeGreaterThan(0);
  }, 60_000);

  test("list --all shows the VM: QEMU pid, vCPUs, memory, RSS, PSS, the template it maps", async () => {
    const rows = JSON.parse((await rt.run(["list", "--all", "-f", "json"])).stdout);
    const stored = JSON.parse(readFileSync(join(rt.root, ID, "state.json"), "utf8"));
    expect(rows[0].vm).toMatchObject({ hypervisorPid: stored.vm.qemu.pid, vcpus: 1, memoryMiB: 256 });
    expect(rows[0].vm.rssKiB).toBeGreaterThan(10_000);
    // Restored from the template (the shipped vm.json templates): its memory file, mapped.
    expect(rows[0].vm.template).toMatch(/\/\.templates\/[0-9a-f]+\/memory$/);
    const maps = readFileSync(`/proc/${stored.vm.qemu.pid}/maps`, "utf8");
    expect(maps).toContain(rows[0].vm.template);
    expect(rows[0].vm.pssKiB).toBeGreaterThan(10_000);
    expect(rows[0].vm.pssKiB).toBeLessThanOrEqual(rows[0].vm.rssKiB);
  }, 60_000);
});

describe("end", () => {
  test("kill, delete: nothing left", async () => {
    expect((await rt.run(["kill", ID, "KILL"])).code).toBe(0);
    for (let i = 0; i < 100 && JSON.parse((await rt.run(["state", ID])).stdout).status !== "stopped"; i++)
      await Bun.sleep(100);
    expect((await rt.run(["exec", ID, "true"])).code).toBe(255);
    expect((await rt.run(["delete", ID])).code).toBe(0);
    expect(rt.leftovers()).toEqual([]);
  }, 60_000);
});
