/**
 * Removing a directory that holds bind mounts of the user's data (needs root, as the
 * runtime does): nothing behind a mount is ever deleted, whatever spelling the path has.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { errorMessage } from "../../src/errors.ts";
import { cstr, libc, ptr } from "../../src/sys/libc.ts";
import {
  mountsBelow,
  realPath,
  removeTree,
  removeWalk,
  unmountAndRemove,
  unmountBelow,
} from "../../src/sys/mounts.ts";
import { tempDir } from "../lib/cli.ts";

const MS_BIND = 4096;
const base = realPath(tempDir("cc-oci-mounts-"));

function bind(source: string, target: string): void {
  const none = cstr("");
  expect(libc().mount(cstr(source), cstr(target), cstr("none"), BigInt(MS_BIND), ptr(none))).toBe(0);
}

/** A tree `<name>/state/shared/vol` with the user's directory bind-mounted at `vol`. */
function treeWithVolume(name: string) {
  const user = join(base, `${name}-user`);
  mkdirSync(user);
  writeFileSync(join(user, "precious.txt"), "keep me\n");
  const tree = join(base, name);
  mkdirSync(join(tree, "state/shared/vol"), { recursive: true });
  writeFileSync(join(tree, "state/file"), "x");
  bind(user, join(tree, "state/shared/vol"));
  return { user, tree, precious: join(user, "precious.txt") };
}

/** The message of what `f` throws, or undefined. */
function thrown(f: () => void): string | undefined {
  try {
    f();
  } catch (err) {
    return errorMessage(err);
  }
  return undefined;
}

afterAll(() => {
  unmountBelow(base);
  removeTree(base);
});

describe("mounts below a directory", () => {
  test("realPath resolves symlinks and relative paths, and keeps a missing tail", () => {
    symlinkSync(base, join(base, "..", `${base.split("/").pop()}-link`));
    const link = `${base}-link`;
    expect(realPath(join(link, "a/b"))).toBe(join(base, "a/b"));
    expect(realPath(".")).toBe(realPath(process.cwd()));
    unlinkSync(link);
    expect(existsSync(base)).toBe(true);
  });

  test("removeTree refuses a tree with a mount in it, and deletes nothing", () => {
    const t = treeWithVolume("refuse");
    expect(() => removeTree(t.tree)).toThrow(/refusing to remove .*: .*state\/shared\/vol is mounted/);
    expect(readFileSync(t.precious, "utf8")).toBe("keep me\n");
    expect(existsSync(join(t.tree, "state/file"))).toBe(true);
    unmountAndRemove(t.tree);
  });

  test("through a symlinked path: the mount is found, unmounted, then the tree removed", () => {
    const t = treeWithVolume("vialink");
    symlinkSync(t.tree, join(base, "vialink-link"));
    const spelled = join(base, "vialink-link", "state");
    expect(mountsBelow(spelled)).toEqual([join(t.tree, "state/shared/vol")]);
    unmountAndRemove(spelled);
    expect(existsSync(join(t.tree, "state"))).toBe(false);
    expect(readFileSync(t.precious, "utf8")).toBe("keep me\n");
  });

  test("nested mounts are unmounted deepest first and verified gone", () => {
    const t = treeWithVolume("nested");
    const inner = join(base, "nested-inner");
    mkdirSync(inner);
    writeFileSync(join(inner, "inner.txt"), "inner\n");
    mkdirSync(join(t.tree, "state/shared/vol/sub"));
    bind(inner, join(t.tree, "state/shared/vol/sub"));
    expect(mountsBelow(t.tree).length).toBe(2);
    unmountAndRemove(t.tree);
    expect(mountsBelow(t.tree)).toEqual([]);
    expect(existsSync(t.tree)).toBe(false);
    expect(readFileSync(t.precious, "utf8")).toBe("keep me\n");
    expect(readFileSync(join(inner, "inner.txt"), "utf8")).toBe("inner\n");
  });

  test("the walk alone (a mount mountinfo did not show): a same-filesystem bind stops it", () => {
    const t = treeWithVolume("walk");
    symlinkSync(t.user, join(t.tree, "state/link")); // removed, never followed
    try {
      const failed = thrown(() => removeWalk(t.tree));
      expect(existsSync(t.precious) && readFileSync(t.precious, "utf8")).toBe("keep me\n");
      expect(failed).toMatch(/^refusing to remove .*\/walk\/state\/shared\/vol: it is a mount point$/);
    } finally {
      unmountAndRemove(t.tree);
    }
  });

  test("a missing directory is not an error", () => {
    expect(() => unmountAndRemove(join(base, "never-made"))).not.toThrow();
  });
});
