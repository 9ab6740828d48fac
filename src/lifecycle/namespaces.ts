/**
 * The namespaces a container's configuration names by path. A VM cannot join a host's pid,
 * ipc, uts, mount, user, cgroup or time namespace: a path for one of those is refused,
 * naming it (runtime-spec: the runtime MUST fail when it cannot honour a namespace). A
 * network namespace path is honoured: the stand-in (and QEMU, its child) lives in it, which
 * is where managers that prepare the namespace first (CNI, netavark, CRI) configure it.
 */
import { statSync } from "node:fs";
import type { OciConfig } from "../config/oci-schema.ts";
import { RuntimeError } from "../errors.ts";
import { NAMESPACE_TYPES, type NamespaceType, namespaceTypeOf } from "../sys/namespaces.ts";

/**
 * Where the stand-in's network namespace comes from: a new one ("own": the spec asks for a
 * network namespace and names none; Docker's prestart hook then fills it), or the one at
 * `path`. A configuration that asks for no network namespace wants the host's network
 * (`--network host`), which a VM cannot share (its guest kernel has a stack of its own):
 * that is an error, as with Kata, rather than a container silently cut off.
 */
export type StandinNetwork = { kind: "own" } | { kind: "path"; path: string };

/** One entry of linux.namespaces, its type and path checked (the path is a namespace of that type). */
interface ListedNamespace {
  type: NamespaceType;
  path?: string;
  /** How errors name it: `FILE: field "linux.namespaces[N]"`. */
  field: string;
}

function listedNamespaces(oci: OciConfig, configFile: string): ListedNamespace[] {
  const list = ((oci.linux as { namespaces?: { type: string; path?: string }[] } | undefined)?.namespaces ??
    []) as { type: string; path?: string }[];
  return list.map((ns, i) => {
    const field = `${configFile}: field "linux.namespaces[${i}]"`;
    if (!(ns.type in NAMESPACE_TYPES))
      throw new RuntimeError(`${field}: unknown namespace type ${JSON.stringify(ns.type)}`);
    const type = ns.type as NamespaceType;
    if (!ns.path) return { type, field };
    let actual: NamespaceType | undefined;
    try {
      actual = namespaceTypeOf(ns.path);
    } catch (err) {
      throw new RuntimeError(`${field}: ${type} namespace ${ns.path}: ${(err as Error).message}`);
    }
    if (actual !== type)
      throw new RuntimeError(
        `${field}: ${ns.path} is ${actual ? `a ${actual}` : "not a"} namespace, not a ${type} one`,
      );
    return { type, path: ns.path, field };
  });
}

function cannotJoin(ns: ListedNamespace): RuntimeError {
  return new RuntimeError(
    `${ns.field}: joining the existing ${ns.type} namespace ${ns.path} is not possible: the container runs in its own VM`,
  );
}

export function checkNamespaces(oci: OciConfig, configFile: string): StandinNetwork {
  let network: StandinNetwork | undefined;
  for (const ns of listedNamespaces(oci, configFile)) {
    if (!ns.path) {
      if (ns.type === "network") network = { kind: "own" };
      continue;
    }
    if (ns.type !== "network") throw cannotJoin(ns);
    if (sameNamespace(ns.path, "/proc/self/ns/net")) {
      // Docker's --network host names the daemon's own namespace (its sandbox key).
      throw new RuntimeError(
        `${ns.field}: ${ns.path} is the caller's own network namespace (--network host): a VM cannot share the host's network stack; give the container a network namespace of its own`,
      );
    }
    network = { kind: "path", path: ns.path };
  }
  if (!network) {
    throw new RuntimeError(
      `${configFile}: field "linux.namespaces" has no network namespace: the container asks for the host's network (--network host), which a VM cannot share; give it a network namespace (--network none or a bridge)`,
    );
  }
  return network;
}

/** The namespaces a pod's containers may share with its sandbox container, in the guest. */
export type PodNamespace = "pid" | "ipc" | "uts";
const POD_SHARED: Record<string, PodNamespace> = { pid: "pid", ipc: "ipc", uts: "uts" };

/**
 * A pod's container (lifecycle/pod.ts) names its sandbox's namespaces by the sandbox's pid,
 * its stand-in's (CRI: /proc/PID/ns/ipc, the pod's netns file): those it joins in the
 * guest, where they are the sandbox container's. The network namespace must be the
 * sandbox's (the pod has one VM, one network); any other path is refused as for any container.
 */
export function podNamespaces(oci: OciConfig, configFile: string, sandboxPid: number): PodNamespace[] {
  const join: PodNamespace[] = [];
  for (const ns of listedNamespaces(oci, configFile)) {
    if (!ns.path) continue;
    const shared = POD_SHARED[ns.type];
    if (ns.type !== "network" && !shared)
      throw new RuntimeError(
        `${ns.field}: joining the existing ${ns.type} namespace ${ns.path} is not possible: a pod's containers share only its network, pid, ipc and uts namespaces (in its VM)`,
      );
    const ofSandbox = sameNamespace(ns.path, `/proc/${sandboxPid}/ns/${shared ?? "net"}`);
    if (ns.type === "network" && ofSandbox) continue;
    if (!ofSandbox || !shared)
      throw new RuntimeError(
        `${ns.field}: ${ns.path} is not the ${ns.type} namespace of the pod's sandbox (its stand-in, pid ${sandboxPid}): a pod's containers share their sandbox's VM`,
      );
    join.push(shared);
  }
  return join;
}

/** Whether both paths are one namespace (false when either is gone: a process that exited). */
function sameNamespace(a: string, b: string): boolean {
  const x = statSync(a, { throwIfNoEntry: false });
  const y = statSync(b, { throwIfNoEntry: false });
  return x !== undefined && y !== undefined && x.ino === y.ino && x.dev === y.dev;
}
