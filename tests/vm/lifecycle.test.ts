/**
 * Containers in real VMs (TCG here): run, create/start, stdio, exit codes, signals, the
 * OCI process settings applied by crun in the guest, hooks. Independent containers are
 * started together in beforeAll (they are also the "4 containers at once" case).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeBundle } from "../lib/bundle.ts";
import { tempDir } from "../lib/cli.ts";
import { HOST_BOOT_ID, qemuProcesses, Runtime } from "../lib/runtime.ts";

const rt = new Runtime();
const BIG_LINES = 12_500_000;

function expectedSeq(n: number): { size: number; sha: string } {
  const h = createHash("sha256");
  let size = 0;
  const batch: string[] = [];
  for (let i = 1; i <= n; i++) {
    batch.push(String(i));
    if (batch.length === 100_000 || i === n) {
      const s = `${batch.join("\n")}\n`;
      h.update(s);
      size += s.length;
      batch.length = 0;
    }
  }
  return { size, sha: h.digest("hex") };
}

const hostFile = join(tempDir(), "shared.txt");
writeFileSync(hostFile, "content-from-the-host\n");

/** A bundle whose hypervisor.args has QEMU bind its sockets at the @..._SOCKET@ paths. */
function pathSocketsBundle(): string {
  const b = makeBundle({ args: ["sh", "-c", "echo via-path-sockets"] });
  const file = join(b, "hypervisor.args");
  const text = readFileSync(file, "utf8")
    .replace(/^socket,id=qmp,fd=@COMMS_FD@,(.*)$/m, "socket,id=qmp,path=@COMMS_SOCKET@,$1")
    .replace(/fd=@AGENT_FD@/, "path=@AGENT_SOCKET@")
    .replace(/fd=@PROCESS_FD@/, "path=@PROCESS_SOCKET@");
  expect(text.split("\n").filter((l) => !l.startsWith("#") && l.includes("_FD@"))).toEqual([]);
  writeFileSync(file, text);
  return b;
}

const results: Record<string, Awaited<ReturnType<Runtime["run"]>>> = {};

beforeAll(async () => {
  const jobs: Record<string, Promise<Awaited<ReturnType<Runtime["run"]>>>> = {
    echo: rt.run([
      "run",
      "--bundle",
      makeBundle({ args: ["sh", "-c", "echo hello-from-vm; cat /proc/sys/kernel/random/boot_id; exit 7"] }),
      "echo",
    ]),
    stdin: rt.run(["run", "--bundle", makeBundle({ args: ["cat"] }), "stdin"], {
      stdin: "piped-through-cat\nline two\n",
    }),
    big: rt.run(["run", "--bundle", makeBundle({ args: ["seq", "1", String(BIG_LINES)] }), "big"], {
      binary: true,
    }),
    settings: rt.run([
      "run",
      "--bundle",
      makeBundle({
        args: [
          "sh",
          "-c",
          "hostname; id -u; id -g; id -G; echo FOO=$FOO; pwd; ulimit -n; cat /mnt/shared.txt; " +
            "(echo x > /mnt/shared.txt) 2>/dev/null && echo WRITABLE || echo READONLY; umask",
        ],
        writable: true,
        edit: (s) => {
          s.hostname = "vm-hostname-test";
          s.process.user = { uid: 1000, gid: 1000, additionalGids: [2001, 2002], umask: 0o27 };
          s.process.env = ["PATH=/bin", "FOO=bar baz"];
          s.process.cwd = "/tmp";
          s.process.rlimits = [{ type: "RLIMIT_NOFILE", hard: 4242, soft: 4242 }];
          (s.mounts as unknown[]).push({
            destination: "/mnt/shared.txt",
            type: "bind",
            source: hostFile,
            options: ["rbind", "ro"],
          });
        },
      }),
      "settings",
    ]),
    // A hypervisor.args of the older form: QEMU binds its sockets itself (path=, server=on).
    pathSockets: rt.run(["run", "--bundle", pathSocketsBundle(), "pathsockets"], {
      env: { CC_OCI_TEMPLATE: "0" },
    }),
  };
  const names = Object.keys(jobs);
  const done = await Promise.all(Object.values(jobs));
  names.forEach((n, i) => {
    results[n] = done[i] as Awaited<ReturnType<Runtime["run"]>>;
  });
}, 600_000);

afterAll(async () => {
  // Nothing may outlive the suite: no state directory, no QEMU.
  await rt.dispose();
});

describe("run", () => {
  test("output of echo, exit code 7 -> 7, in a kernel booted apart from the host's (boot_id)", () => {
    const r = results.echo;
    expect(r?.stderr).toBe("");
    const [line, bootId] = (r?.stdout ?? "").trim().split("\n");
    expect(line).toBe("hello-from-vm");
    expect(bootId).toMatch(/^[0-9a-f-]{36}$/);
    expect(bootId).not.toBe(HOST_BOOT_ID);
    expect(r?.code).toBe(7);
  });

  test("stdin piped through cat, EOF included", () => {
    expect(results.stdin?.stdout).toBe("piped-through-cat\nline two\n");
    expect(results.stdin?.code).toBe(0);
  });

  test("about 100 MB through stdout, intact (sha256)", () => {
    const r = results.big;
    const want = expectedSeq(BIG_LINES);
    expect(r?.bytes.length).toBe(want.size);
    expect(
      createHash("sha256")
        .update(r?.bytes ?? new Uint8Array())
        .digest("hex"),
    ).toBe(want.sha);
    expect(r?.code).toBe(0);
  });

  test("hostname, user 1000:1000 + additional groups, env, cwd, rlimit, umask, read-only bind mount", () => {
    const r = results.settings;
    expect(r?.stderr).toBe("");
    expect((r?.stdout ?? "").trim().split("\n")).toEqual([
      "vm-hostname-test",
      "1000",
      "1000",
      "1000 2001 2002",
      "FOO=bar baz",
      "/tmp",
      "4242",
      "content-from-the-host",
      "READONLY",
      "0027",
    ]);
  });

  test("a hypervisor.args where QEMU binds its own sockets (path=) works as well", () => {
    expect(results.pathSockets?.stdout).toBe("via-path-sockets\n");
    expect(results.pathSockets?.code).toBe(0);
  });

  test("several containers ran at once, and nothing is left after run", () => {
    expect(Object.values(results).every((r) => r.code === 0 || r.code === 7)).toBe(true);
    expect(rt.leftovers()).toEqual([]);
  });
});

describe("suite hygiene", () => {
  test("no qemu-system process and no state directory remain", async () => {
    await Bun.sleep(500);
    expect(qemuProcesses(rt.root)).toEqual([]);
    expect(rt.leftovers()).toEqual([]);
    expect(existsSync(rt.root)).toBe(true);
  });
});
