import { describe, expect, test } from "bun:test";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { procStat } from "../../src/sys/proc.ts";
import { selfArgv } from "../../src/sys/self.ts";
import { PARENT_GUARD, spawnWithParentDeath } from "../../src/sys/spawn.ts";
import { MAIN_TS, ROOT_DIR, tempDir } from "../lib/cli.ts";

const SPAWN_TS = join(ROOT_DIR, "src/sys/spawn.ts");

const alive = (pid: number) => {
  const st = procStat(pid);
  return st !== undefined && st.state !== "Z" && st.state !== "X";
};
const comm = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return undefined;
  }
};
/** Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, session, ...]. */
const statFields = (pid: number) =>
  readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];

const NO_CAPS = "0000000000000000";
/** The capabilities the keepCapabilities tests keep, and them as /proc/PID/status shows them. */
const KEEP = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_MKNOD"];
const KEPT = [0, 1, 27]
  .reduce((m, c) => m | (1n << BigInt(c)), 0n)
  .toString(16)
  .padStart(16, "0");
/** The Cap* lines of a copy of /proc/PID/status, by name. */
const capSets = (file: string) =>
  Object.fromEntries(
    readFileSync(file, "utf8")
      .split("\n")
      .filter((l) => l.startsWith("Cap"))
      .map((l) => l.split(":\t") as [string, string]),
  );

async function until(what: string, cond: () => boolean, ms: number): Promise<number> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(10);
  }
  return Date.now() - t0;
}

/** Runs a script in a child Bun process, which prints the pid of what it spawned on its first line. */
async function helper(body: string) {
  const script = join(tempDir(), "helper.ts");
  writeFileSync(script, `import { spawnWithParentDeath } from ${JSON.stringify(SPAWN_TS)};\n${body}`);
  const proc = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const r = await reader.read();
    if (r.done) throw new Error(`helper ended early: ${text}`);
    text += new TextDecoder().decode(r.value);
  }
  return { proc, pid: Number(text.split("\n")[0]) };
}

describe("selfArgv", () => {
  test("from source: bun plus src/main.ts, whatever the entry script", () => {
    expect(selfArgv("__standin", "x")).toEqual([process.execPath, MAIN_TS, "__standin", "x"]);
  });
});

describe("spawnWithParentDeath", () => {
  test("the program runs in place of the helper, in its own session, with our pid as parent", async () => {
    const p = spawnWithParentDeath(["sleep", "1000"]);
    try {
      await until("exec of sleep", () => comm(p.pid) === "sleep", 5000);
      const [, ppid, pgrp, session] = statFields(p.pid);
      expect(Number(ppid)).toBe(process.pid);
      expect(Number(session)).toBe(p.pid);
      expect(Number(pgrp)).toBe(p.pid);
    } finally {
      process.kill(p.pid, "SIGKILL");
    }
    expect(await p.exited).toBe(128 + 9);
  });

  test("exit status, stdio fds, cwd, environment, default signal dispositions", async () => {
    const dir = tempDir();
    const out = join(dir, "out");
    const fd = openSync(out, "w");
    const p = spawnWithParentDeath(
      [
        "/bin/sh",
        "-c",
        'pwd; echo "$FOO"; env | grep -c -v -e ^FOO= -e ^PATH= -e ^PWD= || true; grep SigIgn /proc/self/status; exit 7',
      ],
      { cwd: dir, stdio: ["ignore", fd, fd], env: { FOO: "bar", PATH: process.env.PATH } },
    );
    closeSync(fd);
    expect(await p.exited).toBe(7);
    const [cwd, foo, others, sigIgn] = readFileSync(out, "utf8").trim().split("\n");
    // Exactly the environment given (the shell adds PWD).
    expect([cwd, foo, others]).toEqual([dir, "bar", "0"]);
    // Bun ignores SIGPIPE (13) and SIGXFSZ (25); the program must not inherit that. (Other
    // bits may be ignored by whatever started the test run, and are passed on as usual.)
    const mask = BigInt(`0x${sigIgn?.split("\t")[1]}`);
    expect(mask & ((1n << 12n) | (1n << 24n))).toBe(0n);
  });

  test("keepCapabilities: a root program has those capabilities only, in every set", async () => {
    const out = join(tempDir(), "out");
    const fd = openSync(out, "w");
    const p = spawnWithParentDeath(["/bin/sh", "-c", "grep ^Cap /proc/self/status"], {
      stdio: ["ignore", fd, fd],
      keepCapabilities: KEEP,
    });
    closeSync(fd);
    expect(await p.exited).toBe(0);
    expect(capSets(out)).toMatchObject({ CapPrm: KEPT, CapEff: KEPT, CapBnd: KEPT, CapAmb: NO_CAPS });
  });

  test("keepCapabilities: a capability in the parent's inheritable set does not reach the program", async () => {
    const dir = tempDir();
    const out = join(dir, "out");
    const script = join(dir, "inheritable.ts");
    // A child of ours with CAP_SYS_ADMIN (21) inheritable: a root program's permitted set
    // after execve is (inheritable | bounding), so dropping it from the bounding set is not enough.
    writeFileSync(
      script,
      `import { openSync, readFileSync } from "node:fs";
       import { spawnWithParentDeath } from ${JSON.stringify(SPAWN_TS)};
       console.log(/^CapInh:\t(.*)$/m.exec(readFileSync("/proc/thread-self/status", "utf8"))?.[1]);
       const fd = openSync(${JSON.stringify(out)}, "w");
       const p = spawnWithParentDeath(["/bin/cat", "/proc/self/status"], {
         stdio: ["ignore", fd, "inherit"],
         keepCapabilities: ${JSON.stringify(KEEP)},
       });
       process.exit(await p.exited);`,
    );
    const proc = Bun.spawn(["setpriv", "--inh-caps", "+sys_admin", "--", process.execPath, script], {
      stdout: "pipe",
      stderr: "inherit",
    });
    expect(await proc.exited).toBe(0);
    expect((await new Response(proc.stdout).text()).trim()).toBe((1n << 21n).toString(16).padStart(16, "0"));
    expect(capSets(out)).toMatchObject({
      CapInh: NO_CAPS,
      CapPrm: KEPT,
      CapEff: KEPT,
      CapBnd: KEPT,
      CapAmb: NO_CAPS,
    });
  });

  test("fds beyond 3 in stdio reach the program (Bun marks inherited fds from 4 on close-on-exec)", async () => {
    const dir = tempDir();
    const files = ["three", "four", "five"].map((name) => {
      writeFileSync(join(dir, name), name);
      return openSync(join(dir, name), "r");
    });
    const out = join(dir, "out");
    const outFd = openSync(out, "w");
    const p = spawnWithParentDeath(["/bin/sh", "-c", "cat <&3; cat <&4; cat <&5"], {
      stdio: ["ignore", outFd, "inherit", ...files],
    });
    expect(await p.exited).toBe(0);
    for (const fd of [outFd, ...files]) closeSync(fd);
    expect(readFileSync(out, "utf8")).toBe("threefourfive");
    // With fd 3 unused, fd 4 still arrives as 4 (a template clone's taps, without a snapshot).
    const only4 = spawnWithParentDeath(
      ["/bin/sh", "-c", "test -e /proc/self/fd/4 && ! test -e /proc/self/fd/3"],
      {
        stdio: ["ignore", "inherit", "inherit", "ignore", openSync(join(dir, "four"), "r")],
      },
    );
    expect(await only4.exited).toBe(0);
  });

  test("a program that cannot be run: 127 or 126 as from a shell, and a line on stderr naming it", async () => {
    const dir = tempDir();
    const err = join(dir, "err");
    for (const [argv, status, msg] of [
      [["/nonexistent/prog"], 127, /\/nonexistent\/prog: not found/],
      [["no-such-program-xyz"], 127, /no-such-program-xyz: not found/],
      [["/etc/passwd"], 126, /\/etc\/passwd: Permission denied/],
    ] as const) {
      const fd = openSync(err, "w");
      const p = spawnWithParentDeath([...argv], { stdio: ["ignore", "ignore", fd] });
      closeSync(fd);
      expect(await p.exited).toBe(status);
      expect(readFileSync(err, "utf8")).toMatch(msg);
    }
    expect(() => spawnWithParentDeath([])).toThrow(/empty argv/);
  });

  test("the program is not started when its parent is not the one expected (died before prctl)", async () => {
    // The guard as spawnWithParentDeath runs it, told to expect pid 1 as its parent.
    const p = Bun.spawn(["/bin/sh", "-c", PARENT_GUARD, "sh", "1", "/bin/true"], { stderr: "pipe" });
    expect(await p.exited).toBe(127);
    expect(await new Response(p.stderr).text()).toMatch(/parent 1 exited before the program started/);
  });

  test("stays alive while its parent does async work for 5 s, dies within 1 s of the parent's SIGKILL", async () => {
    const { proc, pid } = await helper(`
      import { promises as fsp } from "node:fs";
      const p = spawnWithParentDeath(["sleep", "1000"]);
      console.log(p.pid);
      // Other async work, such as makes Bun use its other threads: timers, the fs thread
      // pool, more child processes, a Worker started and terminated.
      const end = Date.now() + 60_000;
      while (Date.now() < end) {
        await fsp.readFile("/proc/self/status");
        await Bun.spawn(["true"]).exited;
        const w = new Worker(URL.createObjectURL(new Blob(["postMessage(1)"])));
        await new Promise((r) => (w.onmessage = r));
        w.terminate();
        await Bun.sleep(50);
      }`);
    try {
      await until("exec of sleep", () => comm(pid) === "sleep", 5000);
      expect(Number(statFields(pid)[1])).toBe(proc.pid);
      const t0 = Date.now();
      while (Date.now() - t0 < 5500) {
        expect(alive(pid)).toBe(true);
        await Bun.sleep(250);
      }
      proc.kill("SIGKILL");
      const took = await until("sleep to die with its parent", () => !alive(pid), 1000);
      expect(took).toBeLessThan(1000);
    } finally {
      proc.kill("SIGKILL");
      if (alive(pid)) process.kill(pid, "SIGKILL");
    }
  }, 20_000);

  test("PR_SET_PDEATHSIG follows the forking THREAD: spawned from a Worker, it dies with the Worker", async () => {
    const dir = tempDir();
    const worker = join(dir, "worker.ts");
    writeFileSync(
      worker,
      `import { spawnWithParentDeath } from ${JSON.stringify(SPAWN_TS)};
       postMessage(spawnWithParentDeath(["sleep", "1000"]).pid);`,
    );
    const w = new Worker(worker);
    const pid = await new Promise<number>((r) => {
      w.onmessage = (e) => r(e.data as number);
    });
    try {
      await until("exec of sleep", () => comm(pid) === "sleep", 5000);
      await Bun.sleep(200);
      expect(alive(pid)).toBe(true);
      w.terminate();
      await until("sleep to die with the Worker's thread", () => !alive(pid), 2000);
    } finally {
      if (alive(pid)) process.kill(pid, "SIGKILL");
    }
  });
});
