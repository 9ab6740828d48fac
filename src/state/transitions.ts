import { RuntimeError } from "../errors.ts";
import type { Status } from "./schema.ts";

/**
 * The one table of which operation is allowed in which state (runtime-spec runtime.md,
 * plus runc's paused). Every command checks here; the error names both states.
 *
 * state.json has one writer per phase: while `creating`, the create process (it writes
 * the first state and, as its last act, `created`); from `created` on, the container's
 * stand-in (start, pause, resume reach it through its hub; it records the exit).
 */
export const ALLOWED: Record<Operation, readonly Status[]> = {
  created: ["creating"],
  start: ["created"],
  kill: ["created", "running", "paused"],
  pause: ["running"],
  resume: ["paused"],
  exec: ["running"],
  delete: ["stopped"],
  ps: ["created", "running", "paused"],
  update: ["created", "running", "paused"],
  events: ["created", "running", "paused"],
  // A paused VM is run for the dump, as runc dumps a frozen cgroup (containerd pauses first).
  checkpoint: ["running", "paused"],
  /** restore's last write (as `created` is create's): the restored process runs already. */
  restored: ["creating"],
};

export type Operation =
  | "created"
  | "start"
  | "kill"
  | "pause"
  | "resume"
  | "exec"
  | "delete"
  | "ps"
  | "update"
  | "events"
  | "checkpoint"
  | "restored";

/** The status an operation leads to, for those that change it. */
export const NEXT = {
  created: "created",
  restored: "running",
  start: "running",
  pause: "paused",
  resume: "running",
} as const satisfies Partial<Record<Operation, Status>>;

/** Checks that `op` may happen in `from` and returns the status it leads to. */
export function advance(op: keyof typeof NEXT, id: string, from: Status): Status {
  assertCan(op, id, from);
  return NEXT[op];
}

export function can(op: Operation, status: Status): boolean {
  return ALLOWED[op].includes(status);
}

export function assertCan(op: Operation, id: string, status: Status): void {
  if (!can(op, status)) {
    const wanted = ALLOWED[op].join(" or ");
    // runc's words for a kill of an exited container: containerd's shim takes "container not
    // running" as "already finished" (not an error), which CRI's task delete relies on.
    const runc = op === "kill" && status === "stopped" ? " (container not running)" : "";
    throw new RuntimeError(
      `cannot ${op} container "${id}": it is ${status}, ${op} needs it ${wanted}${runc}`,
    );
  }
}
