/**
 * The CRI `runtime.v1` messages the e2e tests use (lib/cri/api.proto), as @grpc/proto-loader
 * gives them (keepCase false: fields in camelCase). Requests: only what the caller sets (every
 * field optional, proto3 defaults for the rest). Responses: every field there (defaults: true);
 * an unset message field is null.
 */

type Labels = Record<string, string>;
export type NamespaceMode = "POD" | "CONTAINER" | "NODE" | "TARGET";
export type PodSandboxState = "SANDBOX_READY" | "SANDBOX_NOTREADY";
export type ContainerState =
  | "CONTAINER_CREATED"
  | "CONTAINER_RUNNING"
  | "CONTAINER_EXITED"
  | "CONTAINER_UNKNOWN";

export interface NamespaceOption {
  network?: NamespaceMode;
  pid?: NamespaceMode;
  ipc?: NamespaceMode;
  targetId?: string;
}

export interface SecurityProfile {
  profileType?: "RuntimeDefault" | "Unconfined" | "Localhost";
  localhostRef?: string;
}

export interface LinuxContainerResources {
  cpuPeriod?: number;
  cpuQuota?: number;
  cpuShares?: number;
  memoryLimitInBytes?: number;
  oomScoreAdj?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  unified?: Labels;
  memorySwapLimitInBytes?: number;
}

export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt?: number;
}

export interface PodSandboxConfig {
  metadata: PodSandboxMetadata;
  hostname?: string;
  /** A host directory; each container's `logPath` is relative to it. */
  logDirectory?: string;
  dnsConfig?: { servers?: string[]; searches?: string[]; options?: string[] };
  portMappings?: {
    protocol?: "TCP" | "UDP" | "SCTP";
    containerPort?: number;
    hostPort?: number;
    hostIp?: string;
  }[];
  labels?: Labels;
  annotations?: Labels;
  linux?: {
    cgroupParent?: string;
    securityContext?: {
      namespaceOptions?: NamespaceOption;
      runAsUser?: { value: number };
      runAsGroup?: { value: number };
      readonlyRootfs?: boolean;
      supplementalGroups?: number[];
      privileged?: boolean;
      seccomp?: SecurityProfile;
      apparmor?: SecurityProfile;
    };
    sysctls?: Labels;
    overhead?: LinuxContainerResources;
    resources?: LinuxContainerResources;
  };
}

export interface Mount {
  containerPath: string;
  hostPath: string;
  readonly?: boolean;
  selinuxRelabel?: boolean;
  propagation?: "PROPAGATION_PRIVATE" | "PROPAGATION_HOST_TO_CONTAINER" | "PROPAGATION_BIDIRECTIONAL";
}

export interface ContainerConfig {
  metadata: { name: string; attempt?: number };
  image: { image: string; annotations?: Labels };
  /** The entrypoint (docker's ENTRYPOINT); `args` are docker's CMD. */
  command?: string[];
  args?: string[];
  workingDir?: string;
  envs?: { key: string; value: string }[];
  mounts?: Mount[];
  devices?: { containerPath: string; hostPath: string; permissions: string }[];
  labels?: Labels;
  annotations?: Labels;
  /** Relative to the pod's `logDirectory`. */
  logPath?: string;
  stdin?: boolean;
  stdinOnce?: boolean;
  tty?: boolean;
  linux?: {
    resources?: LinuxContainerResources;
    securityContext?: {
      capabilities?: {
        addCapabilities?: string[];
        dropCapabilities?: string[];
        addAmbientCapabilities?: string[];
      };
      privileged?: boolean;
      namespaceOptions?: NamespaceOption;
      runAsUser?: { value: number };
      runAsGroup?: { value: number };
      runAsUsername?: string;
      readonlyRootfs?: boolean;
      supplementalGroups?: number[];
      noNewPrivs?: boolean;
      maskedPaths?: string[];
      readonlyPaths?: string[];
      seccomp?: SecurityProfile;
      apparmor?: SecurityProfile;
    };
  };
}

export interface VersionResponse {
  version: string;
  runtimeName: string;
  runtimeVersion: string;
  runtimeApiVersion: string;
}

export interface StatusResponse {
  status: { conditions: { type: string; status: boolean; reason: string; message: string }[] } | null;
  info: Labels;
}

export interface PodSandboxStatus {
  id: string;
  metadata: PodSandboxMetadata | null;
  state: PodSandboxState;
  /** Nanoseconds (as a number: its last digits are rounded). */
  createdAt: number;
  network: { ip: string; additionalIps: { ip: string }[] } | null;
  linux: {
    namespaces: { options: Required<NamespaceOption> | null } | null;
  } | null;
  labels: Labels;
  annotations: Labels;
  runtimeHandler: string;
}

export interface PodSandboxStatusResponse {
  status: PodSandboxStatus | null;
  /** Verbose only: JSON strings (containerd: `info`, with pid, netns path, OCI spec...). */
  info: Labels;
}

export interface PodSandbox {
  id: string;
  metadata: PodSandboxMetadata | null;
  state: PodSandboxState;
  createdAt: number;
  labels: Labels;
  annotations: Labels;
  runtimeHandler: string;
}

export interface PodSandboxFilter {
  id?: string;
  state?: { state: PodSandboxState };
  labelSelector?: Labels;
}

export interface Container {
  id: string;
  podSandboxId: string;
  metadata: { name: string; attempt: number } | null;
  image: { image: string; annotations: Labels } | null;
  imageRef: string;
  state: ContainerState;
  createdAt: number;
  labels: Labels;
  annotations: Labels;
}

export interface ContainerFilter {
  id?: string;
  state?: { state: ContainerState };
  podSandboxId?: string;
  labelSelector?: Labels;
}

export interface ContainerStatus {
  id: string;
  metadata: { name: string; attempt: number } | null;
  state: ContainerState;
  createdAt: number;
  startedAt: number;
  finishedAt: number;
  exitCode: number;
  image: { image: string; annotations: Labels } | null;
  imageRef: string;
  reason: string;
  message: string;
  labels: Labels;
  annotations: Labels;
  mounts: Required<Mount>[];
  /** Absolute: the pod's logDirectory joined with the container's logPath. */
  logPath: string;
  resources: { linux: Required<LinuxContainerResources> | null } | null;
}

export interface ContainerStatusResponse {
  status: ContainerStatus | null;
  /** Verbose only: JSON strings (containerd: `info`, with pid, OCI spec...). */
  info: Labels;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The raw bytes. */
  stdoutBytes: Buffer;
  stderrBytes: Buffer;
}

export interface Image {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  size: number;
  uid: { value: number } | null;
  username: string;
  pinned: boolean;
}
