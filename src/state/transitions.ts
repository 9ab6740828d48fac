import { RuntimeError } from "../errors.ts";
import type { Status } from "./schema.ts";

/**
 * The one table of which operation is allowed in which state (runtime-spec runtime.md,
 * plus runc's paused). Every command checks here; the error names both states.
 */
export const ALLOWED: Record<Operation, readonly Status[]> = {
  start: ["created"],
  kill: ["created", "running", "paused"],
  pause: ["running"],
  resume: ["paused"],
  exec: ["running"],
  delete: ["stopped"],
  ps: ["created", "running", "paused"],
  update: ["created", "running", "paused"],
  events: ["created", "running", "paused"],
  checkpoint: ["running"],
};

export type Operation =
  | "start"
  | "kill"
  | "pause"
  | "resume"
  | "exec"
  | "delete"
  | "ps"
  | "update"
  | "events"
  | "checkpoint";

export function can(op: Operation, status: Status): boolean {
  return ALLOWED[op].includes(status);
}

export function assertCan(op: Operation, id: string, status: Status): void {
  if (!can(op, status)) {
    const wanted = ALLOWED[op].join(" or ");
    throw new RuntimeError(`cannot ${op} container "${id}": it is ${status}, ${op} needs it ${wanted}`);
  }
}
