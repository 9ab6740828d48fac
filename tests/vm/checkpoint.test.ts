/**
 * Checkpoint and restore (issue: checkpoint/restore): CRIU in the guest dumps a container's
 * process tree into a directory on the host, its VM goes, and a new VM restores the tree
 * under a new id: a counter that appends to a file in its rootfs goes on from where it was,
 * exec works in the restored container, and its exit status comes back. Errors (no
 * checkpoint, a damaged one, CRIU's own failure, a stopped container) say so and leave
 * nothing behind; a failed dump leaves the container as it was. A terminal container's
 * shell goes on, with its variables, on a new pty handed to the restore's --console-socket.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { closeSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { receiveFdServer } from "../../src/sys/fdpass.ts";
import { fdReader, fdWriter } from "../../src/sys/fdstream.ts";
import { makeBundle } from "../lib/bundle.ts";
import { tempDir } from "../lib/cli.ts";
import { qemuProcesses, Runtime } from "../lib/runtime.ts";
import { removeTmpfsDirs, tmpfsDir } from "../lib/tmpfs.ts";

const rt = new Runtime();

afterAll(async () => {
  await rt.dispose();
  removeTmpfsDirs();
});

afterEach(async () => {
  for (const id of rt.leftovers()) await rt.run(["delete", "--force", id]);
});

/** Appends the next number to /data/count every 0.3 s, from the file's last line; TERM ends it with 7. */
const COUNTER = [
  "sh",
  "-c",
  'trap "echo bye; exit 7" TERM; i=$(tail -n1 /data/count 2>/dev/null || echo 0); while :; do i=$((i+1)); echo $i >> /data/count; sleep 0.3; done',
];

function counterBundle(): { bundle: string; lines: () => string[] } {
  const bundle = makeBundle({ args: COUNTER, writable: true });
  const file = join(bundle, "rootfs/data/count");
  return { bundle, lines: () => (existsSync(file) ? readFileSync(file, "utf8").trim().split("\n") : []) };
}

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(200);
  }
}

/**
 * Runs `args` with --console-socket and returns the terminal it hands over: `type` writes
 * and, given `until`, reads until that text comes (returning what came).
 */
async function consoleOf(args: string[], started?: (p: Promise<{ code: number; stderr: string }>) => void) {
  const sock = join(tempDir(), "console.sock");
  const server = receiveFdServer(sock);
  const running = rt.run([...args.slice(0, 1), "--console-socket", sock, ...args.slice(1)]);
  started?.(running);
  const got = await Promise.race([
    server.accept(120_000),
    running.then((r) => {
      throw new Error(`${args[0]} ended (${r.code}) before handing over its terminal: ${r.stderr}`);
    }),
  ]);
  server.close();
  if (!started) expect((await running).code).toBe(0);
  const writer = fdWriter(got.fd);
  const reader = fdReader(got.fd);
  let seen = "";
  const pumping = (async () => {
    for await (const chunk of reader) seen += new TextDecoder().decode(chunk);
  })().catch(() => {});
  return {
    async type(text: string, until?: string): Promise<string> {
      await writer.write(new TextEncoder().encode(text));
      // The echo of the typed line holds `until` only split ("RE""ADY"): what comes after it does.
      if (until)
        await waitFor(`"${until}" on the terminal`, () => seen.includes(until)).catch((err) => {
          throw new Error(`${err.message}; it showed ${JSON.stringify(seen)}`);
        });
      const out = seen;
      seen = "";
      return out;
    },
    async close() {
      await reader.cancel();
      await pumping;
      closeSync(got.fd);
    },
  };
}

/** The container's status, or "absent" (a restore in progress has no state yet). */
async function status(id: string): Promise<string> {
  const r = await rt.run(["state", id]);
  return r.code === 0 ? (JSON.parse(r.stdout).status as string) : "absent";
}

describe("checkpoint and restore", () => {
  test("a counter checkpointed, its VM gone, restored in a new VM under a new id: it goes on, keeps its lines, exec works, its status comes back", async () => {
    const { bundle, lines } = counterBundle();
    expect((await rt.run(["run", "-d", "--bundle", bundle, "ck-src"])).code).toBe(0);
    await waitFor("3 lines", () => lines().length >= 3);
    const images = tempDir("cc-oci-ckpt-");
    const ck = await rt.run(["checkpoint", "--image-path", images, "ck-src"]);
    expect(ck.stderr).toBe("");
    expect(ck.code).toBe(0);
    // As runc's: the container stopped; its VM is gone once it is deleted.
    expect(await status("ck-src")).toBe("stopped");
    const atDump = lines();
    expect(existsSync(join(images, "inventory.img"))).toBe(true);
    await Bun.sleep(1000);
    expect(lines()).toEqual(atDump);
    expect((await rt.run(["delete", "ck-src"])).code).toBe(0);
    expect(qemuProcesses(rt.root)).toEqual([]);

    // Foreground, as runc restore without -d: the workload's output and status are ours.
    const restored = rt.run(["restore", "--image-path", images, "--bundle", bundle, "ck-dst"]);
    await waitFor("new lines after the restore", () => lines().length >= atDump.length + 3, 120_000);
    const after = lines();
    // Not from 0: the next number after the last one dumped, the old lines kept.
    expect(after.slice(0, atDump.length)).toEqual(atDump);
    expect(Number(after[atDump.length])).toBe(Number(atDump.at(-1)) + 1);
    expect(await status("ck-dst")).toBe("running");
    const ex = await rt.run(["exec", "ck-dst", "sh", "-c", "echo exec-in-restored; tail -n1 /data/count"]);
    expect(ex.code).toBe(0);
    expect(ex.stdout).toMatch(/^exec-in-restored\n\d+\n$/);
    expect((await rt.run(["kill", "ck-dst", "TERM"])).code).toBe(0);
    const r = await restored;
    expect(r.stdout).toBe("bye\n");
    expect(r.code).toBe(7);
    expect(existsSync(join(rt.root, "ck-dst"))).toBe(false);
    expect(qemuProcesses(rt.root)).toEqual([]);
  }, 300_000);

  test("--leave-running, also of a paused container (containerd pauses first): it goes on as it was", async () => {
    const { bundle, lines } = counterBundle();
    expect((await rt.run(["run", "-d", "--bundle", bundle, "ck-live"])).code).toBe(0);
    await waitFor("2 lines", () => lines().length >= 2);
    const images = tempDir("cc-oci-ckpt-");
    expect((await rt.run(["checkpoint", "--leave-running", "--image-path", images, "ck-live"])).code).toBe(0);
    expect(await status("ck-live")).toBe("running");
    const n = lines().length;
    await waitFor("more lines", () => lines().length > n + 1);

    expect((await rt.run(["pause", "ck-live"])).code).toBe(0);
    const paused = tempDir("cc-oci-ckpt-");
    const ck = await rt.run(["checkpoint", "--leave-running", "--image-path", paused, "ck-live"]);
    expect(ck.stderr).toBe("");
    expect(ck.code).toBe(0);
    expect(existsSync(join(paused, "inventory.img"))).toBe(true);
    expect(await status("ck-live")).toBe("paused");
    const frozen = lines().length;
    await Bun.sleep(1500);
    expect(lines().length).toBe(frozen);
    expect((await rt.run(["resume", "ck-live"])).code).toBe(0);
    await waitFor("lines after resume", () => lines().length > frozen);
  }, 300_000);

  test("a shell with a terminal: restored on a new pty from --console-socket, its variables kept, its exit status back", async () => {
    const bundle = makeBundle({ args: ["sh"], terminal: true, writable: true });
    const tty = await consoleOf(["create", "--bundle", bundle, "ck-tty-src"]);
    expect((await rt.run(["start", "ck-tty-src"])).code).toBe(0);
    await tty.type('KEPT=before-dump; echo "RE""ADY"\n', "READY");
    const images = tempDir("cc-oci-ckpt-");
    const ck = await rt.run(["checkpoint", "--image-path", images, "ck-tty-src"]);
    expect(ck.stderr).toBe("");
    expect(ck.code).toBe(0);
    await tty.close();
    expect((await rt.run(["delete", "ck-tty-src"])).code).toBe(0);

    // A configuration without a terminal cannot take it: said, nothing left.
    const plain = makeBundle({ args: ["sh"], writable: true });
    const refused = await rt.run([
      "restore",
      "-d",
      "--image-path",
      images,
      "--bundle",
      plain,
      "ck-tty-plain",
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(
      "the checkpoint is of a container with a terminal and process.terminal is not true",
    );
    expect(existsSync(join(rt.root, "ck-tty-plain"))).toBe(false);

    // Foreground, its terminal on the socket: restore's status is the shell's.
    let restored: Promise<{ code: number; stderr: string }> | undefined;
    const again = await consoleOf(
      ["restore", "--image-path", images, "--bundle", bundle, "ck-tty-dst"],
      (p) => {
        restored = p;
      },
    );
    let ended: { code: number; stderr?: string } | undefined;
    void restored?.then((r) => {
      ended = r;
    });
    await waitFor("the restored container running", async () => {
      if (ended) throw new Error(`restore ended (${ended.code}): ${ended.stderr}`);
      return (await status("ck-tty-dst")) === "running";
    });
    // exec works, and the shell (the container's pid 1) has a controlling terminal again.
    const ex = await rt.run([
      "exec",
      "ck-tty-dst",
      "sh",
      "-c",
      "echo exec-in-restored; cut -d' ' -f7 /proc/1/stat",
    ]);
    expect(ex.stdout).toMatch(/^exec-in-restored\n[1-9]\d*\n$/);
    // Its stdin is the new pty: a terminal (`tty` names it by the container's /dev/console,
    // a bind of it: the slave is of the guest's devpts, not of the container's).
    const out = await again.type('echo "GOT=$KEPT ON=$(tty)"; echo "E""ND"\n', "END");
    expect(out).toMatch(/GOT=before-dump ON=\/dev\/console\r?\n/);
    await again.type("exit 9\n");
    expect((await restored)?.code).toBe(9);
    await again.close();
    expect(existsSync(join(rt.root, "ck-tty-dst"))).toBe(false);
    expect(qemuProcesses(rt.root)).toEqual([]);
  }, 300_000);

  test("errors: no checkpoint, a damaged one, a stopped container, CRIU's own failure; nothing left, a failed dump leaves the container running", async () => {
    const { bundle, lines } = counterBundle();
    const empty = tempDir("cc-oci-ckpt-");
    const none = await rt.run(["restore", "-d", "--image-path", empty, "--bundle", bundle, "ck-none"]);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain(`--image-path ${empty}: no checkpoint there (inventory.img is missing)`);
    expect(rt.lastLogError()).toContain("no checkpoint there");
    expect(existsSync(join(rt.root, "ck-none"))).toBe(false);

    expect((await rt.run(["run", "-d", "--bundle", bundle, "ck-err"])).code).toBe(0);
    await waitFor("2 lines", () => lines().length >= 2);
    // CRIU's own failure: no room for its images (its log goes to --work-path).
    const full = tmpfsDir("cc-oci-ckpt-full-", 1, true);
    const work = tempDir("cc-oci-ckpt-work-");
    const failed = await rt.run(["checkpoint", "--image-path", full, "--work-path", work, "ck-err"]);
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toMatch(/criu dump failed \(exit \d+\): .*Error/);
    expect(await status("ck-err")).toBe("running");
    const n = lines().length;
    await waitFor("lines after the failed dump", () => lines().length > n + 1);
    expect(existsSync(join(rt.root, "ck-err", "shared", ".checkpoint"))).toBe(false);

    const images = tempDir("cc-oci-ckpt-");
    expect((await rt.run(["checkpoint", "--image-path", images, "ck-err"])).code).toBe(0);
    const again = await rt.run(["checkpoint", "--image-path", tempDir("cc-oci-ckpt-"), "ck-err"]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/stopped/);

    // Damaged: CRIU refuses it, with its log's words; no container, no VM left.
    rmSync(join(images, "pstree.img"));
    writeFileSync(join(images, "core-1.img"), "not an image");
    const bad = await rt.run(["restore", "-d", "--image-path", images, "--bundle", bundle, "ck-bad"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/criu restore failed \(exit \d+\): .*Error/);
    expect(existsSync(join(rt.root, "ck-bad"))).toBe(false);
    await rt.run(["delete", "ck-err"]);
    expect(qemuProcesses(rt.root)).toEqual([]);
  }, 300_000);
});
