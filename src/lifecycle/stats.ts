/** runc-style stats of a container: its cgroup in the guest, plus the VM's own cost on the host. */

import { isAlive, memoryKiB, procStat } from "../sys/proc.ts";
import type { RuntimeContext } from "./context.ts";
import { callStandin } from "./standin-client.ts";

const CLK_TCK = 100;

export async function containerStats(ctx: RuntimeContext, id: string): Promise<Record<string, unknown>> {
  const s = ctx.store.read(id);
  const guest = await callStandin(ctx.store.dir(id), id, "stats", { id });
  const qemu = s.vm?.qemu;
  let vm: Record<string, unknown> | undefined;
  if (qemu && isAlive(qemu)) {
    const st = procStat(qemu.pid);
    const mem = memoryKiB(qemu.pid);
    vm = {
      hypervisorPid: qemu.pid,
      cpuSeconds: st ? (st.utime + st.stime) / CLK_TCK : undefined,
      rssBytes: mem ? mem.rss * 1024 : undefined,
      pssBytes: mem ? mem.pss * 1024 : undefined,
      memoryMiB: s.vm?.memoryMiB,
      vcpus: s.vm?.vcpus,
    };
  }
  return { ...guest, vm };
}
