/**
 * How the managers mark a pod's containers (lifecycle/pod.ts reads the roles): containerd's
 * CRI plugin, then CRI-O; the annotation of the role, and of the sandbox's id.
 */
export const POD_ANNOTATIONS = [
  { type: "io.kubernetes.cri.container-type", sandbox: "io.kubernetes.cri.sandbox-id" },
  { type: "io.kubernetes.cri-o.ContainerType", sandbox: "io.kubernetes.cri-o.SandboxID" },
] as const;
