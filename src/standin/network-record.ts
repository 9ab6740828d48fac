/**
 * What a stand-in has joined in its container's network namespace, kept in the state
 * directory (`network.json`, written by the stand-in alone) for the one case it cannot
 * undo itself: it was killed outright. Its taps go with its VM; the ingress qdiscs on the
 * namespace's interfaces stay. When the namespace was named by path (CNI, netavark, CRI: it
 * outlives the stand-in), `delete` takes them off through `__netclean`, a hidden role that
 * enters the namespace (setns must not touch the caller's own thread: a library caller, a
 * shim, lives on). A namespace of the stand-in's own went with it, or with the manager's
 * veth (Docker holds it and removes the veth when the container stops).
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../sys/files.ts";
import { joinNamespace } from "../sys/namespaces.ts";
import { deleteIngressQdisc } from "../sys/netlink-tc.ts";
import { selfArgv } from "../sys/self.ts";

const RECORD = "network.json";
const CLEAN_MS = 10_000;

interface NetworkRecord {
  /** The namespace's path, when it was named by one (else it is the stand-in's own). */
  path?: string;
  interfaces: string[];
}

export function recordJoined(stateDir: string, path: string | undefined, interfaces: string[]): void {
  if (interfaces.length === 0) {
    rmSync(join(stateDir, RECORD), { force: true });
    return;
  }
  writeFileAtomic(
    join(stateDir, RECORD),
    `${JSON.stringify({ path, interfaces } satisfies NetworkRecord)}\n`,
  );
}

/**
 * After the stand-in is gone: takes off what it left joined in a namespace that outlives it.
 * Returns an error line, or undefined when there was nothing to do or it is done.
 */
export function cleanLeftJoins(stateDir: string): string | undefined {
  let record: NetworkRecord;
  try {
    record = JSON.parse(readFileSync(join(stateDir, RECORD), "utf8")) as NetworkRecord;
  } catch {
    return undefined;
  }
  if (!record.path || record.interfaces.length === 0) return undefined;
  const [cmd, ...args] = selfArgv("__netclean", record.path, ...record.interfaces);
  const r = spawnSync(cmd as string, args, { encoding: "utf8", timeout: CLEAN_MS });
  if (r.status === 0) return undefined;
  return `cannot take the redirects off ${record.interfaces.join(", ")} in ${record.path}: ${(r.stderr || r.error?.message || `status ${r.status}`).trim()}`;
}

/** The `__netclean PATH IFACE...` role. */
export function netcleanRole(argv: string[]): number {
  const [path, ...interfaces] = argv;
  if (!path) return 2;
  // A namespace that is gone (the manager removed it) took the redirects with it.
  if (!existsSync(path)) return 0;
  try {
    joinNamespace(path, "network");
    for (const name of interfaces) {
      try {
        deleteIngressQdisc(name);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code !== "ENODEV" && code !== "ENOENT" && code !== "EINVAL") throw err;
      }
    }
    return 0;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 1;
  }
}
