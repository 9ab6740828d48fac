import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { RuntimeError } from "../errors.ts";
import { LOCK_EX, LOCK_UN, libc } from "../sys/libc.ts";
import { unmountAndRemove } from "../sys/mounts.ts";
import { StoredState } from "./schema.ts";

/** runc's rule, anchored: no path separators, no "..", no NUL, not empty. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,1023}$/;

export function validateId(id: string): void {
  if (!ID_PATTERN.test(id)) {
    throw new RuntimeError(
      `invalid container id ${JSON.stringify(id)}: must match ${ID_PATTERN.source} (letters, digits, _ . + -)`,
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

  /** Claims the id: exactly one of any number of concurrent callers succeeds. */
  reserve(id: string): string {
    const dir = this.dir(id);
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") {
        throw new RuntimeError(`container "${id}" already exists`);
      }
      throw new RuntimeError(`cannot create state directory ${dir}: ${(err as Error).message}`);
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
    return names.filter((n) => ID_PATTERN.test(n) && existsSync(join(this.root, n, "state.json"))).sort();
  }

  remove(id: string): void {
    unmountAndRemove(this.dir(id));
  }

  withLock<T>(id: string, fn: () => T): T {
    const fd = openSync(join(this.dir(id), ".lock"), "a", 0o600);
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
    const file = join(this.dir(id), "state.json");
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
      renameSync(tmp, file);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw new RuntimeError(`cannot write ${file}: ${(err as Error).message}`);
    }
  }
}
