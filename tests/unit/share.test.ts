/**
 * The VM share's bind mounts (needs root, as the runtime does): made only inside a shared
 * directory that exists, never re-creating it or the state directory above it.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bindShares } from "../../src/standin/share.ts";
import { mountOptionsAt, mountsBelow, realPath, unmountAndRemove } from "../../src/sys/mounts.ts";
import { tempDir } from "../lib/cli.ts";

const base = realPath(tempDir("cc-oci-share-"));

afterAll(() => unmountAndRemove(base));

/** A user's directory and file to share, each holding a line to read back through the share. */
function userData(name: string) {
  const dir = join(base, `${name}-vol`);
  mkdirSync(dir);
  writeFileSync(join(dir, "data.txt"), "volume\n");
  const file = join(base, `${name}-resolv.conf`);
  writeFileSync(file, "nameserver 10.0.0.1\n");
  return { dir, file };
}

describe("bindShares", () => {
  test("binds each share below the shared directory, creating the levels in between", () => {
    const shared = join(base, "ok/state/shared");
    mkdirSync(shared, { recursive: true });
    const u = userData("ok");
    bindShares(shared, [
      { field: "mounts[0]", source: u.dir, target: "mounts/0/vol", file: false, readonly: true },
      { field: "mounts[1]", source: u.file, target: "mounts/1/resolv.conf", file: true, readonly: false },
    ]);
    expect(readFileSync(join(shared, "mounts/0/vol/data.txt"), "utf8")).toBe("volume\n");
    expect(readFileSync(join(shared, "mounts/1/resolv.conf"), "utf8")).toBe("nameserver 10.0.0.1\n");
    expect(() => writeFileSync(join(shared, "mounts/0/vol/new"), "x")).toThrow(/EROFS/);
    expect(statSync(join(shared, "mounts/0")).mode & 0o777).toBe(0o711);
    expect(mountsBelow(shared).length).toBe(2);
    unmountAndRemove(join(base, "ok"));
    expect(readFileSync(join(u.dir, "data.txt"), "utf8")).toBe("volume\n");
  });

  test("a shared directory removed meanwhile (delete -f): an error naming it, nothing re-created", () => {
    const state = join(base, "gone/state");
    const u = userData("gone");
    expect(() =>
      bindShares(join(state, "shared"), [
        { field: "mounts[0]", source: u.dir, target: "mounts/0/vol", file: false, readonly: false },
      ]),
    ).toThrow(`cannot bind the VM shares: ${state}/shared does not exist`);
    expect(existsSync(join(base, "gone"))).toBe(false);
    expect(mountsBelow(base)).toEqual([]);
  });

  test("a target that climbs out of the shared directory is refused", () => {
    const shared = join(base, "climb/shared");
    mkdirSync(shared, { recursive: true });
    const u = userData("climb");
    expect(() =>
      bindShares(shared, [
        { field: "mounts[0]", source: u.dir, target: "mounts/../../x", file: false, readonly: false },
      ]),
    ).toThrow(`cannot bind into ${join(base, "climb/x")}: it is not below ${shared}`);
    expect(existsSync(join(base, "climb/x"))).toBe(false);
    expect(mountsBelow(base)).toEqual([]);
  });

  test("a read-only share keeps its source's nosuid, nodev and noexec (a user namespace locks them)", () => {
    const locked = join(base, "locked-src");
    mkdirSync(locked);
    execFileSync("mount", ["-t", "tmpfs", "-o", "nosuid,nodev,noexec,size=1m", "tmpfs", locked]);
    const shared = join(base, "locked/shared");
    mkdirSync(shared, { recursive: true });
    bindShares(shared, [
      { field: "mounts[0]", source: locked, target: "mounts/0/v", file: false, readonly: true },
    ]);
    const options = mountOptionsAt(join(shared, "mounts/0/v")) ?? [];
    expect(options).toEqual(expect.arrayContaining(["ro", "nosuid", "nodev", "noexec"]));
    unmountAndRemove(join(base, "locked"));
    execFileSync("umount", [locked]);
  });

  test("a source that cannot be bound: an error naming its config field and the reason", () => {
    const shared = join(base, "nosrc/shared");
    mkdirSync(shared, { recursive: true });
    const source = join(base, "nosrc-missing");
    expect(() =>
      bindShares(shared, [
        { field: "mounts[3]", source, target: "mounts/3/x", file: false, readonly: false },
      ]),
    ).toThrow(`mounts[3]: cannot share ${source} with the VM: mount: No such file or directory (ENOENT)`);
    expect(mountsBelow(base)).toEqual([]);
  });
});
