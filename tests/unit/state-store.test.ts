import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { StoredState } from "../../src/state/schema.ts";
import { StateStore, validateId } from "../../src/state/store.ts";
import { assertCan } from "../../src/state/transitions.ts";
import { MAIN_TS, tempDir } from "../lib/cli.ts";

function state(id: string, n = 0): StoredState {
  return {
    ociVersion: "1.2.0",
    id,
    status: "created",
    bundle: "/b",
    rootfs: "/b/rootfs",
    created: new Date(0).toISOString(),
    owner: "root",
    annotations: { n: String(n), pad: "x".repeat(4096) },
  };
}

describe("container ids", () => {
  test("good ids pass", () => {
    for (const id of ["a", "A1", "c_1.2+3-4", "x".repeat(255)]) expect(() => validateId(id)).not.toThrow();
  });
  test("an id longer than a filename (255 bytes, its state directory's name) is refused, stating the limit", () => {
    for (const id of ["x".repeat(256), "x".repeat(1024)]) {
      expect(() => validateId(id)).toThrow(/invalid container id "x+": longer than 255 characters/);
    }
  });
  test("bad ids are refused with a clear error", () => {
    for (const id of ["", "..", ".", "a/b", "/abs", "a\0b", "-a", "_a", "a b", "é"]) {
      expect(() => validateId(id)).toThrow(/invalid container id/);
    }
  });
  test("the store refuses bad ids before touching the disk", () => {
    const root = tempDir();
    const store = new StateStore(root);
    expect(() => store.reserve("../escape", state("x"))).toThrow(/invalid container id/);
    expect(readdirSync(root)).toEqual([]);
  });
});

describe("state store", () => {
  test("state directory is 0700 and state.json round-trips", () => {
    const store = new StateStore(join(tempDir(), "root"));
    const dir = store.reserve("c1", state("c1"));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(store.read("c1")).toEqual(state("c1"));
    expect(store.list()).toEqual(["c1"]);
    store.remove("c1");
    expect(existsSync(dir)).toBe(false);
  });

  test("an unknown id is a clear error", () => {
    expect(() => new StateStore(tempDir()).read("nosuch")).toThrow('container "nosuch" does not exist');
  });

  test("reserving an id twice fails", () => {
    const store = new StateStore(tempDir());
    store.reserve("dup", state("dup"));
    expect(() => store.reserve("dup", state("dup"))).toThrow('container "dup" already exists');
  });

  test("20 concurrent writers (separate processes): no torn state.json, no lost update", async () => {
    const root = tempDir();
    const store = new StateStore(root);
    store.reserve("c", { ...state("c"), annotations: { count: "0" } });
    const script = `
      import { StateStore } from ${JSON.stringify(join(import.meta.dir, "../../src/state/store.ts"))};
      const s = new StateStore(${JSON.stringify(root)});
      for (let i = 0; i < 10; i++) {
        s.update("c", (st) => ({ ...st, annotations: { ...st.annotations, count: String(Number(st.annotations.count) + 1), pad: "y".repeat(8192 + i) } }));
        JSON.parse(require("node:fs").readFileSync(${JSON.stringify(join(root, "c", "state.json"))}, "utf8"));
      }`;
    const children = Array.from({ length: 20 }, () =>
      Bun.spawn([process.execPath, "-e", script], { stdout: "ignore", stderr: "pipe" }),
    );
    const codes = await Promise.all(children.map((c) => c.exited));
    expect(codes.every((c) => c === 0)).toBe(true);
    const final = JSON.parse(readFileSync(join(root, "c", "state.json"), "utf8"));
    expect(final.annotations.count).toBe("200");
  }, 60000);

  test("concurrent creates of the same id: exactly one wins", async () => {
    const root = tempDir();
    const script = `
      import { StateStore } from ${JSON.stringify(join(import.meta.dir, "../../src/state/store.ts"))};
      try { new StateStore(${JSON.stringify(root)}).reserve("same", ${JSON.stringify(state("same"))}); console.log("won"); } catch { console.log("lost"); }`;
    const children = Array.from({ length: 10 }, () =>
      Bun.spawn([process.execPath, "-e", script], { stdout: "pipe" }),
    );
    const outs = await Promise.all(children.map((c) => new Response(c.stdout).text()));
    expect(outs.filter((o) => o.trim() === "won").length).toBe(1);
    expect(outs.filter((o) => o.trim() === "lost").length).toBe(9);
    expect(MAIN_TS).toBeTruthy();
  }, 60000);
});

describe("transition table", () => {
  test("start needs created; the error names both states", () => {
    expect(() => assertCan("start", "c", "created")).not.toThrow();
    expect(() => assertCan("start", "c", "running")).toThrow(
      'cannot start container "c": it is running, start needs it created',
    );
    expect(() => assertCan("delete", "c", "running")).toThrow(/it is running, delete needs it stopped/);
    expect(() => assertCan("kill", "c", "stopped")).toThrow(/kill needs it created or running or paused/);
    // containerd's shim reads runc's "container not running" as "already finished".
    expect(() => assertCan("kill", "c", "stopped")).toThrow(/\(container not running\)$/);
  });
});
