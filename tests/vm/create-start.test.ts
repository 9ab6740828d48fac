/**
 * create / start / state / kill / delete one step at a time, as containerd drives them:
 * signals, a terminal through a --console-socket receiver, and the hook order.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { receiveFdServer } from "../../src/sys/fdpass.ts";
import { fdReader, fdWriter } from "../../src/sys/fdstream.ts";
import { makeBundle } from "../lib/bundle.ts";
import { tempDir } from "../lib/cli.ts";
import { Runtime } from "../lib/runtime.ts";

const rt = new Runtime();

afterAll(async () => {
  await rt.dispose();
});

/** Starts `run` in the background and reads its stdout as it comes. */
function background(args: string[]) {
  const child = Bun.spawn(rt.argv(args), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let out = "";
  const reader = (async () => {
    for await (const chunk of child.stdout) out += new TextDecoder().decode(chunk);
  })();
  return {
    child,
    output: () => out,
    async waitFor(text: string, ms = 120_000) {
      const until = Date.now() + ms;
      while (!out.includes(text) && Date.now() < until) await Bun.sleep(50);
      if (!out.includes(text)) throw new Error(`no "${text}" in output: ${out}`);
    },
    done: async () => {
      const code = await child.exited;
      await reader;
      return code;
    },
  };
}

async function state(id: string) {
  return JSON.parse((await rt.run(["state", id])).stdout) as { status: string; pid: number };
}

describe("signals", () => {
  test("kill TERM runs the workload's trap; kill KILL gives 137; state follows", async () => {
    const trap = background([
      "run",
      "--bundle",
      makeBundle({
        args: ["sh", "-c", 'trap "echo got-term; exit 3" TERM; echo ready; while true; do sleep 0.1; done'],
      }),
      "trap",
    ]);
    const sleeper = background(["run", "--bundle", makeBundle({ args: ["sleep", "1000"] }), "sleeper"]);
    await trap.waitFor("ready");
    expect((await state("trap")).status).toBe("running");
    expect((await rt.run(["kill", "trap", "TERM"])).code).toBe(0);
    expect(await trap.done()).toBe(3);
    expect(trap.output()).toContain("got-term");

    for (
      let i = 0;
      i < 600 && (await state("sleeper").catch(() => ({ status: "" }))).status !== "running";
      i++
    )
      await Bun.sleep(100);
    expect((await rt.run(["kill", "sleeper", "SIGKILL"])).code).toBe(0);
    expect(await sleeper.done()).toBe(137);
    expect(rt.leftovers()).toEqual([]);
  }, 240_000);
});

describe("create, start, state, delete", () => {
  test("states in order; the pid file holds the stand-in; hooks run in the spec's order", async () => {
    const dir = tempDir();
    const order = join(dir, "order");
    const hook = (name: string) => [
      { path: "/bin/sh", args: ["sh", "-c", `read -r s; echo ${name} >> ${order}`] },
    ];
    const b = makeBundle({
      args: ["sh", "-c", "echo started; sleep 1000"],
      edit: (s) => {
        s.hooks = Object.fromEntries(
          ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"].map(
            (k) => [k, hook(k)],
          ),
        );
      },
    });
    const pidFile = join(dir, "pid");
    const created = await rt.run(["create", "--bundle", b, "--pid-file", pidFile, "steps"]);
    expect(created.stderr).toBe("");
    expect(created.code).toBe(0);
    const pidText = readFileSync(pidFile, "utf8");
    expect(pidText).toMatch(/^\d+$/);
    const st = await state("steps");
    expect(st.status).toBe("created");
    expect(st.pid).toBe(Number(pidText));
    expect(readFileSync(`/proc/${st.pid}/cmdline`, "utf8")).toContain("__standin");
    expect((await rt.run(["start", "steps"])).code).toBe(0);
    expect((await state("steps")).status).toBe("running");
    const again = await rt.run(["start", "steps"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('cannot start container "steps": it is running, start needs it created');
    const notStopped = await rt.run(["delete", "steps"]);
    expect(notStopped.code).toBe(1);
    expect(notStopped.stderr).toContain("it is running, delete needs it stopped");
    expect((await rt.run(["kill", "steps", "9"])).code).toBe(0);
    for (let i = 0; i < 100 && (await state("steps")).status !== "stopped"; i++) await Bun.sleep(100);
    expect(await state("steps")).toMatchObject({ status: "stopped", pid: 0 });
    expect((await rt.run(["delete", "steps"])).code).toBe(0);
    expect(readFileSync(order, "utf8").trim().split("\n")).toEqual([
      "prestart",
      "createRuntime",
      "createContainer",
      "startContainer",
      "poststart",
      "poststop",
    ]);
    expect((await rt.run(["state", "steps"])).code).toBe(1);
    expect((await rt.run(["delete", "--force", "steps"])).code).toBe(0);
    expect(rt.leftovers()).toEqual([]);
  }, 240_000);
});

describe("terminal", () => {
  // The longest id allowed (a 255-byte filename): no socket path, host or guest, grows with it.
  const TTY_ID = `t${"x".repeat(254)}`;
  test("--console-socket gets the pty master (SCM_RIGHTS, pty name as message); a shell talks through it; id of 255 characters", async () => {
    const sock = join(tempDir(), "console.sock");
    const server = receiveFdServer(sock);
    const b = makeBundle({ args: ["sh"], terminal: true });
    const createP = rt.run(["create", "--bundle", b, "--console-socket", sock, TTY_ID]);
    const got = await server.accept(120_000);
    server.close();
    expect(got.message).toMatch(/^\/dev\/pts\/\d+$/);
    const created = await createP;
    expect(created.stderr).toBe("");
    expect(created.code).toBe(0);
    expect((await rt.run(["start", TTY_ID])).code).toBe(0);
    const writer = fdWriter(got.fd);
    let out = "";
    const reading = (async () => {
      for await (const chunk of fdReader(got.fd)) {
        out += new TextDecoder().decode(chunk);
        if (out.includes("TTY=/dev/pts/") && out.includes("END")) break;
      }
    })();
    await writer.write(new TextEncoder().encode('echo "TTY=$(tty)"; echo E""ND\n'));
    await Promise.race([reading, Bun.sleep(60_000)]);
    expect(out).toMatch(/TTY=\/dev\/pts\/\d+/);
    await writer.write(new TextEncoder().encode("exit 5\n"));
    for (let i = 0; i < 200 && (await state(TTY_ID)).status !== "stopped"; i++) await Bun.sleep(100);
    expect((await state(TTY_ID)).status).toBe("stopped");
    closeSync(got.fd);
    expect((await rt.run(["delete", TTY_ID])).code).toBe(0);
    expect(existsSync(join(rt.root, TTY_ID))).toBe(false);
  }, 240_000);
});
