/**
 * Turns the bundle's config.json into the one crun gets inside the guest, and lists the
 * host paths that must be shared for it. Host-only parts are removed (hooks run on the
 * host; namespace paths and the vm object mean nothing in the guest); bind mounts of host
 * files and directories are redirected to their copies in the share.
 */
import { statSync } from "node:fs";
import type { OciConfig } from "../config/oci-schema.ts";
import { RuntimeError } from "../errors.ts";

/** Where the agent mounts the share in the guest (agent/containers.ts SHARE_MOUNT). */
export const GUEST_SHARE = "/run/cc/shared";
/** The newest runtime-spec version the guest's crun accepts. */
const GUEST_OCI_VERSION = "1.1.0";

/** A host path bind-mounted into the shared directory at `target` (relative). */
export interface HostShare {
  source: string;
  target: string;
  file: boolean;
  readonly: boolean;
}

export function isBindMount(m: { type?: string; options?: string[] }): boolean {
  return m.type === "bind" || (m.options ?? []).some((o) => o === "bind" || o === "rbind");
}

function isDirectory(path: string): boolean | undefined {
  try {
    return statSync(path).isDirectory();
  } catch {
    return undefined;
  }
}

/**
 * The host paths a container needs, checked as soon as its bundle is resolved: a bad one is
 * an error naming its config field before any VM or template work (a rootfs that is a file
 * would otherwise fail as errno 20 from mount(2), after a template build).
 */
export function checkHostPaths(oci: OciConfig, rootfs: string, configFile: string): void {
  const rootIsDir = isDirectory(rootfs);
  if (rootIsDir === undefined)
    throw new RuntimeError(`rootfs ${rootfs} does not exist (root.path in ${configFile})`);
  if (!rootIsDir) throw new RuntimeError(`rootfs ${rootfs} is not a directory (root.path in ${configFile})`);
  (oci.mounts ?? []).forEach((m, i) => {
    if (isBindMount(m) && m.source && isDirectory(m.source) === undefined)
      throw new RuntimeError(`${configFile}: field "mounts[${i}].source": ${m.source} does not exist`);
  });
}

export function guestConfig(
  oci: OciConfig,
  id: string,
  rootfs: string,
): { config: Record<string, unknown>; shares: HostShare[] } {
  const config = structuredClone(oci) as Record<string, unknown> & OciConfig;
  delete config.vm;
  delete config.hooks;
  // crun 1.8 (Debian 12) refuses ociVersion above 1.1; the fields it reads are the same.
  if (/^1\.([2-9]|\d\d)/.test(oci.ociVersion)) config.ociVersion = GUEST_OCI_VERSION;
  const shares: HostShare[] = [{ source: rootfs, target: "rootfs", file: false, readonly: false }];
  config.root = { ...oci.root, path: `${GUEST_SHARE}/rootfs` };
  config.mounts = (oci.mounts ?? []).map((m, i) => {
    if (!isBindMount(m) || !m.source) return m;
    const isDir = isDirectory(m.source);
    // Checked by checkHostPaths; gone since then.
    if (isDir === undefined) throw new RuntimeError(`bind-mount source ${m.source} is gone (mounts[${i}])`);
    const file = !isDir;
    const target = `mounts/${i}`;
    shares.push({ source: m.source, target, file, readonly: (m.options ?? []).includes("ro") });
    return { ...m, source: `${GUEST_SHARE}/${target}` };
  });
  const linux = { ...(oci.linux ?? {}) } as Record<string, unknown>;
  if (Array.isArray(linux.namespaces)) {
    linux.namespaces = (linux.namespaces as { type: string; path?: string }[]).map(({ type }) => ({ type }));
  }
  // cgroups live in the guest (v2, no systemd): one fixed place per container.
  linux.cgroupsPath = `/cc-oci/${id}`;
  config.linux = linux;
  return { config, shares };
}
