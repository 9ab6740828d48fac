/**
 * The unprivileged user the non-root tests run as (CI and developers run `make check` as
 * root): made once on this machine with a home of its own, and in group kvm where the host
 * has one (what the README asks of a user who wants KVM).
 */
import { execFileSync } from "node:child_process";
import { appendFileSync, existsSync, readFileSync } from "node:fs";

export const TEST_USER = "cc-oci-test";
const HOME = "/var/lib/cc-oci-test";

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

function lookup(name: string): TestUser | undefined {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}:`));
  if (!line) return undefined;
  const f = line.split(":");
  return { name, uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? HOME };
}

export function testUser(): TestUser {
  const found = lookup(TEST_USER);
  if (found) return found;
  try {
    execFileSync("useradd", [
      "--create-home",
      "--home-dir",
      HOME,
      "--shell",
      "/bin/sh",
      "--user-group",
      TEST_USER,
    ]);
  } catch (err) {
    // Another test process made it meanwhile.
    if (!lookup(TEST_USER)) throw err;
  }
  if (
    readFileSync("/etc/group", "utf8")
      .split("\n")
      .some((l) => l.startsWith("kvm:"))
  ) {
    execFileSync("usermod", ["--append", "--groups", "kvm", TEST_USER]);
  }
  return lookup(TEST_USER) as TestUser;
}

/** argv run as `u` (its uid, gid and groups; no capabilities), through util-linux's setpriv. */
export function asUser(u: TestUser, argv: string[]): string[] {
  return ["setpriv", "--reuid", String(u.uid), "--regid", String(u.gid), "--init-groups", "--", ...argv];
}

/** Gives `u` what is at `path`, recursively. */
export function chownTo(u: TestUser, path: string): void {
  execFileSync("chown", ["-R", "--no-dereference", `${u.uid}:${u.gid}`, path]);
}

/**
 * Gives `u` a range of subordinate uids and gids (/etc/subuid, /etc/subgid) if it has none,
 * after every range there is: what rootless podman maps into its user namespace.
 */
export function subordinateIds(u: TestUser, count = 65536): TestUser {
  for (const file of ["/etc/subuid", "/etc/subgid"]) {
    const lines = existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
    if (lines.some((l) => l.startsWith(`${u.name}:`) || l.startsWith(`${u.uid}:`))) continue;
    const end = lines.reduce((m, l) => {
      const [, start, n] = l.split(":");
      return Math.max(m, Number(start) + Number(n));
    }, 200_000);
    appendFileSync(file, `${u.name}:${end}:${count}\n`);
  }
  return u;
}
