/**
 * The files the runtime writes (state.json, pid files, launch files) and reads for the
 * user, with errors that name the file: Node's own (`ENOSPC: no space left on device,
 * write`) name none, which on a full disk leaves the user guessing which one.
 */
import { openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { RuntimeError } from "../errors.ts";

/** `no space left on device (ENOSPC)` from a Node error; its message's first line otherwise. */
export function ioReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const m = /^(E[A-Z0-9]+): ([^,]+)/.exec(e?.message ?? "");
  if (m) return `${m[2]} (${m[1]})`;
  return (e?.message ?? String(err)).split("\n")[0] ?? "";
}

/** `flag` as for writeFileSync: "wx" never replaces an existing file. */
export function writeFileNamed(file: string, data: string, mode = 0o600, flag = "w"): void {
  try {
    writeFileSync(file, data, { mode, flag });
  } catch (err) {
    throw new RuntimeError(`cannot write ${file}: ${ioReason(err)}`);
  }
}

/** Temp file + rename: readers see the old content or the new, never a part; no temp file is left. */
export function writeFileAtomic(file: string, data: string, mode = 0o600): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, data, { mode });
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new RuntimeError(`cannot write ${file}: ${ioReason(err)}`);
  }
}

/** `what` says what the file is for: `/x.json: cannot read the process file: ...`. */
export function readFileNamed(file: string, what: string, shownAs = file): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new RuntimeError(`${shownAs}: cannot read ${what}: ${ioReason(err)}`);
  }
}

/** openSync whose error names the file (a lock file or a log on a full disk, out of inodes). */
export function openNamed(file: string, flags: string | number, mode = 0o600): number {
  try {
    return openSync(file, flags, mode);
  } catch (err) {
    throw new RuntimeError(`cannot open ${file}: ${ioReason(err)}`);
  }
}
