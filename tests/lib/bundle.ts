/**
 * Busybox bundles for VM tests, built from Debian's busybox-static (no registry). The
 * base rootfs is made once under build/ and shared read-only; a test that writes gets its
 * own copy. Each bundle carries vm.json and hypervisor.args from build/local (the build
 * tree's guest), so the bundle directory is what the resolver finds first.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defaultSpec } from "../../src/config/default-spec.ts";
import { ROOT_DIR, tempDir } from "./cli.ts";

export const BASE_ROOTFS = join(ROOT_DIR, "build/test-rootfs");
const LOCAL_CONFIG = join(ROOT_DIR, "build/local");

export function baseRootfs(): string {
  if (existsSync(join(BASE_ROOTFS, "bin/sh"))) return BASE_ROOTFS;
  const tmp = `${BASE_ROOTFS}.${process.pid}`;
  for (const d of ["bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/user", "data"]) {
    mkdirSync(join(tmp, d), { recursive: true });
  }
  cpSync("/bin/busybox", join(tmp, "bin/busybox"));
  const list = Bun.spawnSync(["/bin/busybox", "--list"]).stdout.toString().trim().split("\n");
  for (const applet of list) if (applet !== "busybox") symlinkSync("busybox", join(tmp, "bin", applet));
  writeFileSync(
    join(tmp, "etc/passwd"),
    "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
  );
  writeFileSync(join(tmp, "etc/group"), "root:x:0:\nuser:x:1000:\nextra1:x:2001:user\nextra2:x:2002:user\n");
  writeFileSync(join(tmp, "etc/hostname"), "busybox\n");
  try {
    Bun.spawnSync(["mv", "-T", tmp, BASE_ROOTFS]);
  } catch {
    // Another test process made it first.
  }
  return BASE_ROOTFS;
}

export interface BundleOptions {
  args: string[];
  terminal?: boolean;
  /** A private, writable copy of the rootfs instead of the shared read-only one. */
  writable?: boolean;
  /** `spec --rootless`'s configuration (a user namespace mapping the caller's ids). */
  rootless?: boolean;
  edit?: (spec: Record<string, unknown> & { process: Record<string, unknown> }) => void;
}

export function makeBundle(opts: BundleOptions): string {
  const dir = tempDir("cc-oci-bundle-");
  let rootPath = baseRootfs();
  if (opts.writable) {
    rootPath = join(dir, "rootfs");
    cpSync(baseRootfs(), rootPath, { recursive: true, verbatimSymlinks: true });
  }
  const spec = defaultSpec(opts.rootless === true) as Record<string, unknown> & {
    process: Record<string, unknown>;
  };
  spec.process.args = opts.args;
  spec.process.terminal = opts.terminal ?? false;
  spec.root = { path: rootPath, readonly: !opts.writable };
  spec.hostname = "cc-test";
  opts.edit?.(spec);
  writeFileSync(join(dir, "config.json"), JSON.stringify(spec, null, 2));
  for (const f of readdirSync(LOCAL_CONFIG)) cpSync(join(LOCAL_CONFIG, f), join(dir, f));
  return dir;
}
