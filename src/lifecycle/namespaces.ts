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

export function checkNamespaces(oci: OciConfig, configFile: string): StandinNetwork {
  const list = ((oci.linux as { namespaces?: { type: string; path?: string }[] } | undefined)?.namespaces ??
    []) as { type: string; path?: string }[];
  let network: StandinNetwork | undefined;
  list.forEach((ns, i) => {
    const field = `${configFile}: field "linux.namespaces[${i}]"`;
    if (!(ns.type in NAMESPACE_TYPES))
      throw new RuntimeError(`${field}: unknown namespace type ${JSON.stringify(ns.type)}`);
    const type = ns.type as NamespaceType;
    if (!ns.path) {
      if (type === "network") network = { kind: "own" };
      return;
    }
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
    if (type !== "network")
      throw new RuntimeError(
        `${field}: joining the existing ${type} namespace ${ns.path} is not possible: the container runs in its own VM`,
      );
    if (sameNamespace(ns.path, "/proc/self/ns/net")) {
      // Docker's --network host names the daemon's own namespace (its sandbox key).
      throw new RuntimeError(
        `${field}: ${ns.path} is the caller's own network namespace (--network host): a VM cannot share the host's network stack; give the container a network namespace of its own`,
      );
    }
    network = { kind: "path", path: ns.path };
  });
  if (!network) {
    throw new RuntimeError(
      `${configFile}: field "linux.namespaces" has no network namespace: the container asks for the host's network (--network host), which a VM cannot share; give it a network namespace (--network none or a bridge)`,
    );
  }
  return network;
}

function sameNamespace(a: string, b: string): boolean {
  const x = statSync(a);
  const y = statSync(b);
  return x.ino === y.ino && x.dev === y.dev;
}
