/**
 * Debian's managers, installed when missing: containerd 1.6 (and runc, its CRI plugin's
 * default runtime handler; node, which runs lib/cri.ts's gRPC client), docker.io 20.10 (its
 * client is /usr/bin/docker, which a newer /usr/local/bin/docker may shadow on PATH), podman 4.3
 * with conmon, and what their networking needs (lib/netns.ts): iptables (dockerd's rules, the
 * CNI plugins'), Debian's CNI plugins in /usr/lib/cni (ctr --cni, CRI), netavark and
 * aardvark-dns (podman's default network backend), uidmap and slirp4netns (rootless podman).
 * `apt-get update` only when a plain install fails (a stale or empty package list).
 */
import { existsSync } from "node:fs";
import { cmd, describe } from "./proc.ts";

/** Debian package -> a file it installs. */
const NEEDED: Record<string, string> = {
  containerd: "/usr/bin/containerd",
  // Debian's runc: containerd's CRI default runtime handler (lib/cri.ts); docker.io needs it too.
  runc: "/usr/bin/runc",
  // The CRI client's gRPC runs under node (lib/cri/bridge.mjs).
  nodejs: "/usr/bin/node",
  "docker.io": "/usr/sbin/dockerd",
  podman: "/usr/bin/podman",
  conmon: "/usr/bin/conmon",
  "busybox-static": "/bin/busybox",
  bsdutils: "/usr/bin/script",
  "util-linux": "/usr/bin/findmnt",
  iproute2: "/sbin/ip",
  iptables: "/usr/sbin/iptables",
  "containernetworking-plugins": "/usr/lib/cni/bridge",
  netavark: "/usr/lib/podman/netavark",
  "aardvark-dns": "/usr/lib/podman/aardvark-dns",
  // Rootless podman: newuidmap/newgidmap (setuid) map the user's subordinate ids;
  // slirp4netns is its network for a user (unused with --network none, required to start).
  uidmap: "/usr/bin/newuidmap",
  slirp4netns: "/usr/bin/slirp4netns",
};

export const DOCKER = "/usr/bin/docker";
export const DOCKERD = "/usr/sbin/dockerd";
export const CONTAINERD = "/usr/bin/containerd";
export const CTR = "/usr/bin/ctr";
export const PODMAN = "/usr/bin/podman";
/** Debian's CNI plugins (containernetworking-plugins). */
export const CNI_PLUGINS = "/usr/lib/cni";

let done: Promise<void> | undefined;

/** Every package above; `only`: just those of them (a file that needs no other manager). */
export function ensurePackages(only?: string[]): Promise<void> {
  if (only) return install(only);
  done ??= install(Object.keys(NEEDED));
  return done;
}

/** What lib/cri.ts needs: containerd with its CRI plugin, runc, the CNI plugins, node, busybox, ip. */
export const CRI_PACKAGES = [
  "containerd",
  "runc",
  "containernetworking-plugins",
  "nodejs",
  "busybox-static",
  "iproute2",
];

async function install(pkgs: string[]): Promise<void> {
  const missing = pkgs.filter((pkg) => {
    const file = NEEDED[pkg];
    if (!file) throw new Error(`ensurePackages: ${pkg} is not one of packages.ts's`);
    return !existsSync(file);
  });
  if (missing.length === 0) return;
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const argv = ["apt-get", "install", "-y", "--no-install-recommends", ...missing];
  let r = await cmd(argv, { env, timeout: 600_000 });
  if (r.code !== 0) {
    const u = await cmd(["apt-get", "update"], { env, timeout: 300_000 });
    if (u.code !== 0) throw new Error(`apt-get update failed:\n${describe(u)}`);
    r = await cmd(argv, { env, timeout: 600_000 });
  }
  if (r.code !== 0) throw new Error(`installing ${missing.join(" ")} failed:\n${describe(r)}`);
}
