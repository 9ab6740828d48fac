import { describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { openNamed, readFileNamed, writeFileAtomic, writeFileNamed } from "../../src/sys/files.ts";
import { tempDir } from "../lib/cli.ts";

describe("files the runtime writes: errors name the file", () => {
  test("an open that fails (a lock file, a log) says which file and why", () => {
    const file = join(tempDir(), "no-such-dir", ".lock");
    expect(() => openNamed(file, "a")).toThrow(`cannot open ${file}: no such file or directory (ENOENT)`);
  });

  test("a write that fails says which file and why, in words and errno name", () => {
    const file = join(tempDir(), "no-such-dir", "state.json");
    expect(() => writeFileNamed(file, "{}")).toThrow(
      `cannot write ${file}: no such file or directory (ENOENT)`,
    );
    expect(() => writeFileAtomic(file, "{}")).toThrow(
      `cannot write ${file}: no such file or directory (ENOENT)`,
    );
  });

  test("an atomic write that fails at the rename leaves no temp file", () => {
    const dir = tempDir();
    const target = join(dir, "pid");
    mkdirSync(join(target, "in-the-way"), { recursive: true });
    expect(() => writeFileAtomic(target, "42")).toThrow(
      new RegExp(`^cannot write ${target}: .+ \\(E[A-Z]+\\)$`),
    );
    expect(readdirSync(dir)).toEqual(["pid"]);
  });

  test("an atomic write replaces the content whole, with the mode asked for", () => {
    const file = join(tempDir(), "pid");
    writeFileAtomic(file, "1", 0o644);
    writeFileAtomic(file, "23", 0o600);
    expect(readFileSync(file, "utf8")).toBe("23");
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  test("a read that fails names the file and what it is for", () => {
    const file = join(tempDir(), "process.json");
    expect(() => readFileNamed(file, "the process file")).toThrow(
      `${file}: cannot read the process file: no such file or directory (ENOENT)`,
    );
  });
});
