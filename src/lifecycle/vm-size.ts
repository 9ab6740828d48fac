/**
 * A VM's size from its container's limits (linux.resources), as Kata sizes its VMs: the
 * container gets what it asked for, the guest its own overhead on top, and a container
 * without limits the configured default (vm.json `vcpus`, `memory`).
 *  - vCPUs: the CPU quota over its period, rounded up, or the cpuset's CPU count (the
 *    smaller of the two when both are given), at most the CPUs this process may run on.
 *  - memory: the memory limit plus GUEST_RESERVE_MIB (what the guest keeps: kernel, agent,
 *    a margin; guest-config.ts), rounded up to MEMORY_STEP_MIB so that nearby limits share
 *    a template, never below the default and at most the host's memory.
 */
import { availableParallelism, totalmem } from "node:os";
import { cpusetCpus, GUEST_RESERVE_MIB } from "./guest-config.ts";

export interface VmSize {
  vcpus: number;
  memoryMiB: number;
}

/** VM memory comes in steps of this many MiB: limits of 1-64 MiB apart share a template. */
export const MEMORY_STEP_MIB = 64;
const MIB = 1024 * 1024;

interface Resources {
  memory?: { limit?: number };
  cpu?: { quota?: number; period?: number; cpus?: string };
}

export interface HostSize {
  cpus: number;
  memoryMiB: number;
}

export function hostSize(): HostSize {
  return { cpus: availableParallelism(), memoryMiB: Math.floor(totalmem() / MIB) };
}

export function sizeVm(
  resources: Resources | undefined,
  defaults: VmSize,
  host: HostSize,
  note: (msg: string) => void = () => {},
): VmSize {
  const cpu = resources?.cpu;
  const wanted: number[] = [];
  if (cpu?.quota !== undefined && cpu.quota > 0) wanted.push(Math.ceil(cpu.quota / (cpu.period || 100_000)));
  const cpuset = cpu?.cpus ? cpusetCpus(cpu.cpus) : undefined;
  if (cpuset?.length) wanted.push(cpuset.length);
  let vcpus = wanted.length ? Math.min(...wanted) : defaults.vcpus;
  if (vcpus > host.cpus) {
    note(
      `the container asks for ${vcpus} CPUs, this host lets us run on ${host.cpus}: the VM gets ${host.cpus}`,
    );
    vcpus = host.cpus;
  }
  const limit = resources?.memory?.limit;
  let memoryMiB = defaults.memoryMiB;
  if (limit !== undefined && limit > 0) {
    const step = (mib: number) => Math.ceil(mib / MEMORY_STEP_MIB) * MEMORY_STEP_MIB;
    memoryMiB = Math.max(defaults.memoryMiB, step(Math.ceil(limit / MIB) + GUEST_RESERVE_MIB));
    const most = Math.floor(host.memoryMiB / MEMORY_STEP_MIB) * MEMORY_STEP_MIB;
    if (memoryMiB > most) {
      note(
        `memory limit ${limit} and the guest's ${GUEST_RESERVE_MIB} MiB are more than this host has: the VM gets ${most} MiB`,
      );
      memoryMiB = most;
    }
  }
  return { vcpus: Math.max(1, vcpus), memoryMiB };
}
