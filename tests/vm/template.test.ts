/**
 * VM templating (CC_OCI_TEMPLATE=1): the first container builds a template snapshot, later
 * ones are restored from it, each with its own random pool and the right clock; a changed
 * configuration builds a new template and the stale one goes; two configurations keep
 * theirs side by side; a truncated or damaged snapshot is rebuilt, and so is one the
 * hypervisor fails to load; another hypervisor binary is another template (safety issue, item 5).
 */
import { afterAll, describe, expect, test } from "bun:test";
import {
  appendFileSync,
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { makeBundle } from "../lib/bundle.ts";
import { tempDir } from "../lib/cli.ts";
import { HOST_BOOT_ID, Runtime } from "../lib/runtime.ts";

const rt = new Runtime();
const env = { CC_OCI_TEMPLATE: "1" };

afterAll(async () => {
  await rt.dispose();
});
const probe = [
  "sh",
  "-c",
  "cat /proc/sys/kernel/random/boot_id; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; date +%s",
];
let bundleOfFirst = "";
/** The snapshot built last (the tests below give their bundle a configuration of its own). */
function newestSnapshot(): string {
  const newest = templates()
    .map((k) => join(rt.root, ".templates", k, "snapshot"))
    .filter((f) => existsSync(f))
    .sort((x, y) => statSync(y).mtimeMs - statSync(x).mtimeMs)[0];
  if (!newest) throw new Error("no template snapshot");
  return newest;
}
const templates = () => readdirSync(join(rt.root, ".templates")).filter((n) => n !== ".lock");

describe("templating", () => {
  test("clones start from the snapshot, each with its own entropy and the host's time", async () => {
    const bundle = makeBundle({ args: probe });
    bundleOfFirst = bundle;
    const first = await rt.run(["run", "--bundle", bundle, "t1"], { env });
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(templates().length).toBe(1);
    const snapshot = join(rt.root, ".templates", templates()[0] as string, "snapshot");
    expect(existsSync(snapshot)).toBe(true);
    const [a, b] = await Promise.all([
      rt.run(["run", "--bundle", bundle, "t2"], { env }),
      rt.run(["run", "--bundle", bundle, "t3"], { env }),
    ]);
    const lines = [first, a, b].map((r) => r.stdout.trim().split("\n"));
    for (const [bootId, random, time] of lines) {
      expect(bootId).toMatch(/^[0-9a-f-]{36}$/);
      expect(bootId).not.toBe(HOST_BOOT_ID);
      expect(random).toMatch(/^[0-9a-f]{32}$/);
      expect(Math.abs(Number(time) - Date.now() / 1000)).toBeLessThan(30);
    }
    expect(lines[1]?.[1]).not.toBe(lines[2]?.[1]);
    expect(rt.leftovers()).toEqual([]);
    // The clones used the same template (no rebuild).
    expect(templates().length).toBe(1);
  }, 240_000);

  test("changing a configuration's hypervisor.args builds a new template; the stale one goes", async () => {
    const before = templates();
    appendFileSync(join(bundleOfFirst, "hypervisor.args"), "\n# a change\n");
    const r = await rt.run(["run", "--bundle", bundleOfFirst, "t4"], { env });
    expect(r.code).toBe(0);
    const after = templates();
    expect(after.length).toBe(1);
    expect(after).not.toEqual(before);
  }, 240_000);

  test("two configurations in one root keep their own templates, used at once", async () => {
    const a = makeBundle({ args: ["true"] });
    const b = makeBundle({ args: ["true"] });
    appendFileSync(join(b, "hypervisor.args"), "\n# configuration b\n");
    const first = await Promise.all([
      rt.run(["run", "--bundle", a, "two-a1"], { env }),
      rt.run(["run", "--bundle", b, "two-b1"], { env }),
    ]);
    expect(first.map((r) => r.code)).toEqual([0, 0]);
    const both = templates();
    const again = await Promise.all(
      [a, b, a, b].map((bundle, i) => rt.run(["run", "--bundle", bundle, `two-${i}`], { env })),
    );
    expect(again.map((r) => [r.code, r.stderr])).toEqual([
      [0, ""],
      [0, ""],
      [0, ""],
      [0, ""],
    ]);
    expect(templates().sort()).toEqual(both.sort());
    expect(rt.leftovers()).toEqual([]);
  }, 300_000);

  test("a truncated snapshot is found before use and rebuilt", async () => {
    const bundle = makeBundle({ args: ["echo", "after-truncation"] });
    appendFileSync(join(bundle, "hypervisor.args"), "\n# truncation test\n");
    expect((await rt.run(["run", "--bundle", bundle, "tr1"], { env })).code).toBe(0);
    const snap = newestSnapshot();
    truncateSync(snap, 4096);
    const r = await rt.run(["run", "--bundle", bundle, "tr2"], { env });
    expect(r).toMatchObject({ code: 0, stdout: "after-truncation\n", stderr: "" });
    expect(statSync(newestSnapshot()).size).toBeGreaterThan(4096);
  }, 240_000);

  test("a snapshot damaged in place (same size and time): the failed restore checks it, rebuilds it", async () => {
    const bundle = makeBundle({ args: ["echo", "after-damage"] });
    appendFileSync(join(bundle, "hypervisor.args"), "\n# damage test\n");
    expect((await rt.run(["run", "--bundle", bundle, "dm1"], { env })).code).toBe(0);
    const snap = newestSnapshot();
    // The time is put back to the nanosecond (touch -r), as a silent corruption would leave it.
    const ref = `${snap}.time`;
    expect(Bun.spawnSync(["touch", "-r", snap, ref]).exitCode).toBe(0);
    const fd = openSync(snap, "r+");
    writeSync(fd, new Uint8Array(64 * 1024).fill(0xa5), 0, 64 * 1024, 0);
    closeSync(fd);
    expect(Bun.spawnSync(["touch", "-r", ref, snap]).exitCode).toBe(0);
    rmSync(ref);
    const r = await rt.run(["run", "--bundle", bundle, "dm2"], { env });
    expect(r).toMatchObject({ code: 0, stdout: "after-damage\n", stderr: "" });
    expect(readFileSync(rt.log, "utf8")).toMatch(
      /VM template .*snapshot is damaged \(its checksum changed\): rebuilding it/,
    );
    expect(rt.leftovers()).toEqual([]);
  }, 240_000);

  test("a hypervisor that fails to load an intact snapshot: rebuilt once; a changed hypervisor binary, a new template", async () => {
    // A wrapper as the hypervisor: it fails a restore (-incoming) once, while a marker file
    // exists, as a QEMU that cannot load the snapshot would; otherwise it is QEMU.
    const dir = tempDir();
    const marker = join(dir, "fail-next-restore");
    const wrapper = join(dir, "qemu-wrapper");
    const bundle = makeBundle({ args: ["echo", "after-reload"] });
    const vmFile = join(bundle, "vm.json");
    const vm = JSON.parse(readFileSync(vmFile, "utf8")) as { path: string };
    const qemu = vm.path;
    writeFileSync(vmFile, JSON.stringify({ ...vm, path: wrapper }));
    writeFileSync(
      wrapper,
      `#!/bin/sh\ncase " $* " in *" -incoming "*) if [ -e ${marker} ]; then rm -f ${marker}; exit 3; fi ;; esac\nexec ${qemu} "$@"\n`,
      { mode: 0o755 },
    );
    expect((await rt.run(["run", "--bundle", bundle, "rl1"], { env })).code).toBe(0);
    const snap = newestSnapshot();
    const built = statSync(snap).ino;
    writeFileSync(marker, "");
    const r = await rt.run(["run", "--bundle", bundle, "rl2"], { env });
    expect(r).toMatchObject({ code: 0, stdout: "after-reload\n", stderr: "" });
    expect(existsSync(marker)).toBe(false);
    expect(readFileSync(rt.log, "utf8")).toMatch(
      /VM template .*snapshot did not restore: rebuilding it \(restoring the VM template .*hypervisor exited with status 3/,
    );
    expect(statSync(newestSnapshot()).ino).not.toBe(built);
    // Another hypervisor binary (here: the same path, changed) is another template.
    const before = templates();
    utimesSync(wrapper, new Date(), new Date(Date.now() + 5_000));
    expect((await rt.run(["run", "--bundle", bundle, "rl3"], { env })).code).toBe(0);
    expect(templates().filter((k) => !before.includes(k)).length).toBe(1);
    expect(rt.leftovers()).toEqual([]);
  }, 300_000);
});
