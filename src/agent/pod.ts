/**
 * A pod's container in its sandbox's VM (lifecycle/pod.ts): the namespaces it shares with
 * the pod are the sandbox container's, which only the guest can name (by its init's pid).
 * The network namespace needs nothing: every container of the VM is in the guest's own,
 * where the pod's NICs are (guest-config.ts drops it), so the pod's containers share it.
 */
import type { RequestOf } from "../protocol/messages.ts";

/** /proc/PID/ns/<file> of each namespace type a pod shares. */
const NS_FILE = { pid: "pid", ipc: "ipc", uts: "uts" } as const;

/**
 * `config` with each namespace in `join` given the path of the sandbox init's own; one the
 * configuration does not list is added (the runtime-spec: a listed type with a path joins it).
 */
export function joinPodNamespaces(
  config: Record<string, unknown>,
  sandboxInit: number,
  join: NonNullable<RequestOf<"create">["pod"]>["join"],
): Record<string, unknown> {
  const linux = { ...((config.linux ?? {}) as Record<string, unknown>) };
  const listed = ((linux.namespaces ?? []) as { type: string; path?: string }[]).filter(
    (ns) => !(join as string[]).includes(ns.type),
  );
  for (const type of join) listed.push({ type, path: `/proc/${sandboxInit}/ns/${NS_FILE[type]}` });
  linux.namespaces = listed;
  return { ...config, linux };
}
