import { closeSync, existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { RuntimeError } from "../errors.ts";
import { ioReason, openNamed, writeFileAtomic } from "../sys/files.ts";
import { LOCK_EX, LOCK_UN, libc } from "../sys/libc.ts";
import { unmountAndRemove } from "../sys/mounts.ts";
import { StoredState } from "./schema.ts";

/** runc's rule, anchored: no path separators, no "..", no NUL, not empty. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/;
/**
 * The id names the container's state directory (and its bundle directory and cgroup in the
 * guest): a filename, at most 255 bytes, one byte per character of ID_PATTERN. Nothing else
 * bounds it: host socket paths are relative to the state directory, the guest's console
 * sockets are reached through their directory (sys/fdpass.ts), the VM name is truncated.
 */
export const ID_MAX_LENGTH = 255;

function isValidId(id: string): boolean {
  return ID_PATTERN.test(id) && id.length <= ID_MAX_LENGTH;
}

export function validateId(id: string): void {
  if (!ID_PATTERN.test(id)) {
    throw new RuntimeError(
      `invalid container id ${JSON.stringify(id)}: must match ${ID_PATTERN.source} (letters, digits, _ . + -)`,
    );
  }
  if (id.length > ID_MAX_LENGTH) {
    throw new RuntimeError(
      `invalid container id ${JSON.stringify(id)}: longer than ${ID_MAX_LENGTH} characters (it names the state directory)`,
    );
  }
}

/**
 * The state store under `--root`: one directory per container (mode 0700) holding
 * `state.json`, written atomically (temp file + rename) under an exclusive flock so
 * that concurrent runtime processes never see a torn or lost update.
 */
export class StateStore {
  constructor(readonly root: string) {}

  dir(id: string): string {
    validateId(id);
    return join(this.root, id);
  }

  exists(id: string): boolean {
    return existsSync(join(this.dir(id), "state.json"));
  }

  /**
   * Claims the id: exactly one of any number of concurrent callers succeeds, and its first
   * state is there at once (no window in which the id is taken but has no state).
   */
  reserve(id: string, initial: StoredState): string {
    const dir = this.dir(id);
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") {
        throw new RuntimeError(`container "${id}" already exists`);
      }
      throw new RuntimeError(`cannot create state directory ${dir}: ${ioReason(err)}`);
    }
    try {
      this.write(id, initial);
    } catch (err) {
      // No state, no claim: the id must not stay taken by an empty directory.
      unmountAndRemove(dir);
      throw err;
    }
    return dir;
  }

  read(id: string): StoredState {
    const file = join(this.dir(id), "state.json");
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      throw new RuntimeError(`container "${id}" does not exist`);
    }
    const parsed = StoredState.safeParse(JSON.parse(text));
    if (!parsed.success) throw new RuntimeError(`${file}: corrupt state: ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  }

  tryRead(id: string): StoredState | undefined {
    try {
      return this.read(id);
    } catch {
      return undefined;
    }
  }

  write(id: string, state: StoredState): void {
    this.withLock(id, () => this.writeUnlocked(id, state));
  }

  /** Read-modify-write under the lock; returns the state written. */
  update(id: string, change: (s: StoredState) => StoredState): StoredState {
    return this.withLock(id, () => {
      const next = change(this.read(id));
      this.writeUnlocked(id, next);
      return next;
    });
  }

  /** Ids that have a state directory, sorted; directories without state.json are skipped. */
  list(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.root);
    } catch {
      return [];
    }
    return names.filter((n) => isValidId(n) && existsSync(join(this.root, n, "state.json"))).sort();
  }

  remove(id: string): void {
    unmountAndRemove(this.dir(id));
  }

  withLock<T>(id: string, fn: () => T): T {
    const lockFile = join(this.dir(id), ".lock");
    let fd: number;
    try {
      fd = openNamed(lockFile, "a");
    } catch (err) {
      throw new RuntimeError(`cannot open ${lockFile}: ${ioReason(err)}`);
    }
    try {
      if (libc().flock(fd, LOCK_EX) !== 0) throw new RuntimeError(`cannot lock state of container "${id}"`);
      try {
        return fn();
      } finally {
        libc().flock(fd, LOCK_UN);
      }
    } finally {
      closeSync(fd);
    }
  }

  /** A failed write (a full disk) leaves the old state.json and no temporary file. */
  private writeUnlocked(id: string, state: StoredState): void {
    writeFileAtomic(join(this.dir(id), "state.json"), `${JSON.stringify(state, null, 2)}\n`);
  }
}
