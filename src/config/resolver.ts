import { existsSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { RuntimeError } from "../errors.ts";
import type { Logger } from "../log/logger.ts";
import { configSearchDirs } from "./build.ts";
import { OciConfig } from "./oci-schema.ts";
import { readJsonFile, validate } from "./validate.ts";
import { type VmConfig, VmSchema } from "./vm-schema.ts";

export const CONFIG_JSON = "config.json";
export const VM_JSON = "vm.json";
export const HYPERVISOR_ARGS = "hypervisor.args";

/** The directories a configuration file is looked for in, first match wins (the seed's order). */
export function searchPath(bundle: string, dirs: string[] = configSearchDirs()): string[] {
  return [bundle, ...dirs];
}

export function findConfigFile(name: string, bundle: string, dirs?: string[]): string | undefined {
  for (const dir of searchPath(bundle, dirs)) {
    const file = join(dir, name);
    if (existsSync(file)) return file;
  }
  return undefined;
}

export interface ResolvedVm {
  vm: VmConfig;
  /** The file the VM configuration came from (config.json or a vm.json). */
  source: string;
}

export interface ResolvedBundle {
  bundle: string;
  configFile: string;
  oci: OciConfig;
  /** root.path made absolute against the bundle. */
  rootfs: string;
  vm: ResolvedVm;
  hypervisorArgsFile: string;
}

export function loadOciConfig(bundle: string): { file: string; oci: OciConfig } {
  const file = join(bundle, CONFIG_JSON);
  return { file, oci: readJsonFile(OciConfig, file) };
}

/** config.json's `vm` object, else the first vm.json along the search path. */
export function resolveVm(bundle: string, oci: OciConfig, configFile: string, dirs?: string[]): ResolvedVm {
  if (oci.vm !== undefined) {
    return { vm: validate(VmSchema, oci.vm, `${configFile} (vm)`), source: configFile };
  }
  const file = findConfigFile(VM_JSON, bundle, dirs);
  if (!file) {
    throw new RuntimeError(
      `no VM configuration: ${configFile} has no "vm" object and no ${VM_JSON} in ${searchPath(bundle, dirs).join(", ")}`,
    );
  }
  return { vm: readJsonFile(VmSchema, file), source: file };
}

export function resolveHypervisorArgs(bundle: string, dirs?: string[]): string {
  const file = findConfigFile(HYPERVISOR_ARGS, bundle, dirs);
  if (!file) throw new RuntimeError(`no ${HYPERVISOR_ARGS} in ${searchPath(bundle, dirs).join(", ")}`);
  return file;
}

/** Everything `create` needs from a bundle, each file's full path logged as the seed did. */
export function resolveBundle(bundleArg: string, log: Logger, dirs?: string[]): ResolvedBundle {
  const bundle = resolve(bundleArg);
  if (!existsSync(bundle)) throw new RuntimeError(`bundle directory ${bundle} does not exist`);
  const { file: configFile, oci } = loadOciConfig(bundle);
  log.info(`using OCI config ${configFile}`);
  const vm = resolveVm(bundle, oci, configFile, dirs);
  log.info(`using VM config ${vm.source}`);
  const hypervisorArgsFile = resolveHypervisorArgs(bundle, dirs);
  log.info(`using hypervisor args ${hypervisorArgsFile}`);
  const rootfs = isAbsolute(oci.root.path) ? oci.root.path : join(bundle, oci.root.path);
  return { bundle, configFile, oci, rootfs, vm, hypervisorArgsFile };
}
