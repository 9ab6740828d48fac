/**
 * runtime-spec runtime.md, "create": changes to config.json after create MUST NOT affect the
 * container. start, exec and delete (its poststop hooks) use what create was given.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeBundle } from "../lib/bundle.ts";
import { tempDir } from "../lib/cli.ts";
import { Runtime } from "../lib/runtime.ts";

const rt = new Runtime();

afterAll(async () => {
  await rt.dispose();
});

test("runtime-spec create: config.json replaced after create changes nothing (start, exec, poststop)", async () => {
  const marks = tempDir();
  const poststop = join(marks, "poststop");
  const bundle = makeBundle({
    args: ["sleep", "1000"],
    edit: (s) => {
      s.process.env = ["PATH=/bin", "FROM_CREATE=yes"];
      s.hooks = { poststop: [{ path: "/bin/sh", args: ["sh", "-c", `echo ran > ${poststop}`] }] };
    },
  });
  expect((await rt.run(["create", "--bundle", bundle, "cfg"])).code).toBe(0);
  writeFileSync(join(bundle, "config.json"), JSON.stringify({ ociVersion: "1.0.0" }));
  const start = await rt.run(["start", "cfg"]);
  expect(start.stderr).toBe("");
  expect(start.code).toBe(0);
  // exec's base process is the container's as created: its env is there.
  const exec = await rt.run(["exec", "cfg", "sh", "-c", "echo $FROM_CREATE"]);
  expect(exec).toMatchObject({ code: 0, stdout: "yes\n" });
  const del = await rt.run(["delete", "-f", "cfg"]);
  expect(del.stderr).toBe("");
  expect(del.code).toBe(0);
  expect(existsSync(poststop) && readFileSync(poststop, "utf8")).toBe("ran\n");
  expect(rt.leftovers()).toEqual([]);
}, 180_000);
