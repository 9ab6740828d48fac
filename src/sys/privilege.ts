/**
 * What this process may do on the host, asked once per process:
 *  - "host-root": uid 0 of the host (the initial user namespace, whose uid_map is the
 *    identity over every id): mounts, host cgroups, any file's owner.
 *  - "namespace-root": uid 0 of a user namespace that maps only part of the host's ids.
 *    Rootless podman runs its OCI runtime so, in the mount and network namespaces it owns:
 *    bind mounts and taps work there, the host's cgroup tree is not ours to write.
 *  - "user": anyone else. The container's stand-in then gets a user namespace of its own
 *    (lifecycle/spawn-standin.ts) in which the user is root over its own ids only.
 */
import { readFileSync } from "node:fs";

export type Privilege = "host-root" | "namespace-root" | "user";

let cached: Privilege | undefined;

/** The identity map of the initial user namespace: ids 0.. map to 0.., all 2^32-1 of them. */
export function isIdentityMap(uidMap: string): boolean {
  const lines = uidMap.trim().split("\n");
  return lines.length === 1 && /^\s*0\s+0\s+4294967295\s*$/.test(lines[0] ?? "");
}

export function privilege(): Privilege {
  if (cached) return cached;
  if (process.geteuid?.() !== 0) cached = "user";
  else {
    let map = "";
    try {
      map = readFileSync("/proc/self/uid_map", "utf8");
    } catch {
      // No /proc: nothing says we are in a user namespace.
      map = "0 0 4294967295";
    }
    cached = isIdentityMap(map) ? "host-root" : "namespace-root";
  }
  return cached;
}

/**
 * 9p's security_model for the container's share (hypervisor.args @SHARE_SECURITY@).
 * passthrough acts on files as the guest's users (chown to any id): root can, and so can a
 * user namespace's root over the ids it maps. A user's QEMU runs in the stand-in's user
 * namespace where only the user is mapped (as root): `none` is passthrough whose failed
 * ownership changes on create are not errors, so a file any guest user creates is the
 * user's on the host (an explicit chown to another id fails, EINVAL, as in runc's rootless
 * containers that map one id). mapped-xattr would keep the guest's owners in xattrs, but
 * needs user xattrs on the rootfs's filesystem (not tmpfs before Linux 6.6) and leaves
 * host files mode 0600: a hypervisor.args may name it instead of the tag.
 */
export function shareSecurityModel(p: Privilege = privilege()): "passthrough" | "none" {
  return p === "user" ? "none" : "passthrough";
}

/**
 * Why a user cannot have a user namespace of its own, from the kernel's switches (Debian's
 * kernel.unprivileged_userns_clone, user.max_user_namespaces); undefined if nothing says so.
 */
export function userNamespaceRefusal(read = (f: string) => readFileSync(f, "utf8")): string | undefined {
  const value = (file: string) => {
    try {
      return read(file).trim();
    } catch {
      return undefined; // not this kernel's switch
    }
  };
  const clone = "/proc/sys/kernel/unprivileged_userns_clone";
  if (value(clone) === "0") return `${clone} is 0: unprivileged user namespaces are off`;
  const max = "/proc/sys/user/max_user_namespaces";
  if (value(max) === "0") return `${max} is 0: user namespaces are off`;
  return undefined;
}
