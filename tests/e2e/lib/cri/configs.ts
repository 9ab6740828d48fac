/**
 * CRI configurations shaped like kubelet's (`podConfig`, `containerConfig`: the namespaces it
 * asks for, its log layout) and a container's CRI log file read back to its stdout and stderr
 * (`readCriLog`).
 */

import { existsSync, readFileSync } from "node:fs";
import type { ContainerConfig, PodSandboxConfig } from "./types.ts";

/**
 * A pod's config like kubelet's: metadata, hostname `name`, its log directory `logDirectory`
 * (kubelet: /var/log/pods/NAMESPACE_NAME_UID; give one in the workspace), the namespaces kubelet
 * asks for (network and IPC of the pod, PID of each container: the pause process is not every
 * container's PID 1). `extra` is merged over it (shallowly).
 */
export function podConfig(
  name: string,
  logDirectory: string,
  extra: Partial<PodSandboxConfig> & { uid?: string; namespace?: string } = {},
): PodSandboxConfig {
  const { uid, namespace, ...rest } = extra;
  return {
    metadata: { name, uid: uid ?? `${name}-uid`, namespace: namespace ?? "cc-e2e", attempt: 0 },
    hostname: name,
    logDirectory,
    linux: { securityContext: { namespaceOptions: { network: "POD", pid: "CONTAINER", ipc: "POD" } } },
    ...rest,
  };
}

/**
 * A container's config like kubelet's: its log at `NAME/0.log` in the pod's log directory,
 * `command` as the entrypoint (`args` as docker's CMD when given), the pod's namespaces.
 */
export function containerConfig(
  name: string,
  image: string,
  command: string[],
  extra: Partial<ContainerConfig> = {},
): ContainerConfig {
  return {
    metadata: { name, attempt: 0 },
    image: { image },
    command,
    logPath: `${name}/0.log`,
    linux: { securityContext: { namespaceOptions: { network: "POD", pid: "CONTAINER", ipc: "POD" } } },
    ...extra,
  };
}

export interface CriLogLine {
  /** RFC 3339 with nanoseconds, as containerd writes it. */
  time: string;
  stream: "stdout" | "stderr";
  /** Whether the line ends a line of the container's output (F) or is part of a longer one (P). */
  full: boolean;
  text: string;
}

/**
 * A CRI log file (`TIME STREAM F|P TEXT` lines) back to the container's output: every line,
 * and each stream's text as the container wrote it (a full line gets its newline back).
 */
export function readCriLog(file: string): { lines: CriLogLine[]; stdout: string; stderr: string } {
  const lines: CriLogLine[] = [];
  const out = { stdout: "", stderr: "" };
  const raw = existsSync(file) ? readFileSync(file, "utf8") : "";
  for (const l of raw.split("\n")) {
    // Tags are `:`-separated, the first one P (partial) or F (full).
    const m = /^(\S+) (stdout|stderr) (\S+)(?: (.*))?$/.exec(l);
    if (!m) continue;
    const line: CriLogLine = {
      time: m[1] ?? "",
      stream: m[2] as "stdout" | "stderr",
      full: m[3]?.split(":")[0] !== "P",
      text: m[4] ?? "",
    };
    lines.push(line);
    out[line.stream] += line.full ? `${line.text}\n` : line.text;
  }
  return { lines, ...out };
}
