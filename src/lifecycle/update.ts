import type { App } from "../cli/app.ts";
import { NotImplementedError } from "../errors.ts";

export interface UpdateFlags {
  resources?: string;
  memory?: number;
  memoryReservation?: number;
  memorySwap?: number;
  cpuShares?: number;
  cpuShare?: number;
  cpuQuota?: number;
  cpuPeriod?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  pidsLimit?: number;
  blkioWeight?: number;
}

export async function updateContainer(_app: App, _id: string, _flags: UpdateFlags): Promise<number> {
  throw new NotImplementedError("update");
}
