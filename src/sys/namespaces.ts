/**
 * Linux namespaces named by path (runtime-spec config-linux.md "namespaces"): what type a
 * path is (ioctl NS_GET_NSTYPE, the kernel's own answer, whatever the path looks like: a
 * /proc/PID/ns link or a bind-mounted nsfs file such as /run/netns/NAME), and joining one.
 */
import { closeSync, openSync } from "node:fs";
import { errno, libc, SysError } from "./libc.ts";

/** The spec's namespace names and their CLONE_NEW* flags. */
export const NAMESPACE_TYPES = {
  pid: 0x20000000,
  network: 0x40000000,
  mount: 0x00020000,
  ipc: 0x08000000,
  uts: 0x04000000,
  user: 0x10000000,
  cgroup: 0x02000000,
  time: 0x00000080,
} as const;
export type NamespaceType = keyof typeof NAMESPACE_TYPES;

const NS_GET_NSTYPE = 0xb703;

/** The namespace type `path` is, or undefined when it is no namespace; throws if it cannot be opened. */
export function namespaceTypeOf(path: string): NamespaceType | undefined {
  const fd = openSync(path, "r");
  try {
    const flag = libc().ioctl(fd, NS_GET_NSTYPE, null);
    if (flag < 0) return undefined;
    return (Object.keys(NAMESPACE_TYPES) as NamespaceType[]).find((t) => NAMESPACE_TYPES[t] === flag);
  } finally {
    closeSync(fd);
  }
}

/** Moves the calling thread (the main thread: what /proc/PID/ns shows) into `path`'s namespace. */
export function joinNamespace(path: string, type: NamespaceType): void {
  const fd = openSync(path, "r");
  try {
    if (libc().setns(fd, NAMESPACE_TYPES[type]) !== 0) throw new SysError("setns", errno(), path);
  } finally {
    closeSync(fd);
  }
}
