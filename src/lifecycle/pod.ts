/**
 * Pods (Kubernetes through CRI): the managers mark each container of a pod with its role
 * in annotations. The sandbox (pause) container boots the pod's one VM, in the network
 * namespace CNI configured, as any container does; each other container of the pod is a
 * member: created in that VM (lifecycle/create-member.ts), in the pod's network, and in
 * the sandbox's IPC, UTS and PID namespaces when its configuration names them. Without
 * the annotations a container is alone in its VM.
 */
import { POD_ANNOTATIONS } from "../config/pod-annotations.ts";
import { RuntimeError } from "../errors.ts";

export type PodRole = { kind: "alone" } | { kind: "sandbox" } | { kind: "member"; sandbox: string };

export function podRole(
  id: string,
  annotations: Record<string, string> | undefined,
  configFile: string,
): PodRole {
  for (const keys of POD_ANNOTATIONS) {
    const type = annotations?.[keys.type];
    if (type === undefined) continue;
    const field = `${configFile}: annotation "${keys.type}"`;
    if (type === "sandbox") return { kind: "sandbox" };
    if (type !== "container")
      throw new RuntimeError(`${field}: expected "sandbox" or "container", got ${JSON.stringify(type)}`);
    const sandbox = annotations?.[keys.sandbox];
    if (!sandbox) throw new RuntimeError(`${field} is "container": annotation "${keys.sandbox}" is required`);
    if (sandbox === id)
      throw new RuntimeError(
        `${configFile}: annotation "${keys.sandbox}": a container cannot be its own sandbox`,
      );
    return { kind: "member", sandbox };
  }
  return { kind: "alone" };
}

/** containerd's totals for the pod (kubelet 1.23+: the sum of its containers' limits), on its sandbox. */
export const POD_SIZE_ANNOTATIONS = {
  memory: "io.kubernetes.cri.sandbox-memory",
  cpuQuota: "io.kubernetes.cri.sandbox-cpu-quota",
  cpuPeriod: "io.kubernetes.cri.sandbox-cpu-period",
} as const;

interface SizingResources {
  memory?: { limit?: number };
  cpu?: { quota?: number; period?: number; cpus?: string };
}

/**
 * What a sandbox's VM is sized for (lifecycle/vm-size.ts): the pod's totals where the
 * manager gives them, else the sandbox container's own limits. The VM is booted once for
 * the whole pod (microvm: no memory or CPU hotplug): its containers' limits, which come
 * later, are each bounded by it in the guest.
 */
export function podSizing(
  annotations: Record<string, string> | undefined,
  own: SizingResources | undefined,
): SizingResources | undefined {
  const number = (key: string) => {
    const n = Number(annotations?.[key]);
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  };
  const memory = number(POD_SIZE_ANNOTATIONS.memory);
  const quota = number(POD_SIZE_ANNOTATIONS.cpuQuota);
  if (memory === undefined && quota === undefined) return own;
  return {
    memory: memory !== undefined ? { limit: memory } : own?.memory,
    cpu:
      quota !== undefined
        ? { ...own?.cpu, quota, period: number(POD_SIZE_ANNOTATIONS.cpuPeriod) ?? 100_000 }
        : own?.cpu,
  };
}
