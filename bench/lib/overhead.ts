/**
 * What a VM costs its host cgroup beyond the guest's memory, against the budget the runtime
 * bounds it by (lifecycle/host-cgroup.ts HOST_OVERHEAD_MIB): a container with a 256 MiB
 * limit fills it (a tmpfs, then `ls -lR /` a few times: page cache and the guest's code),
 * and the host cgroup's peak is read (v1 memory.max_usage_in_bytes, v2 memory.peak), then
 * less the VM's memory (its `state` annotation). Part of the memory section.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { hostOverheadMiB } from "../../src/lifecycle/host-cgroup.ts";
import { makeBundle } from "../../tests/lib/bundle.ts";
import type { CcContender } from "./contenders.ts";
import type { Ctx } from "./context.ts";

const S = "memory";
const MIB = 1024 * 1024;
const LIMIT_MIB = 256;
const FILL = `dd if=/dev/zero of=/fill/x bs=1M count=${LIMIT_MIB - 16} 2>/dev/null; for i in 1 2 3 4 5; do ls -lR / >/dev/null 2>&1; done; true`;

/** The host cgroup's peak memory, MiB, from the directory the state records. */
function peakMiB(dirs: Record<string, string>): number {
  const v1 = dirs.memory;
  const file = v1 ? join(v1, "memory.max_usage_in_bytes") : join(dirs[""] as string, "memory.peak");
  return Number(readFileSync(file, "utf8")) / MIB;
}

export async function hostOverhead(ctx: Ctx, c: CcContender, round: number): Promise<void> {
  const id = `ovh${round}`;
  const bundle = makeBundle({
    args: ["sleep", "100000"],
    edit: (s) => {
      const linux = s.linux as Record<string, unknown>;
      linux.resources = { memory: { limit: LIMIT_MIB * MIB } };
      (s.mounts as unknown[]).push({
        destination: "/fill",
        type: "tmpfs",
        source: "tmpfs",
        options: ["size=300m"],
      });
    },
  });
  try {
    await c.createIdle(id, bundle);
    await c.must(["exec", id, "sh", "-c", FILL]);
    const state = JSON.parse((await c.must(["state", id])).stdout) as { annotations: Record<string, string> };
    const vm = Number(state.annotations["io.cc-oci-runtime.vm.memory-mib"]);
    const stored = c.session.stateFile(id) as unknown as {
      hostCgroup: { dirs: Record<string, string> };
      vm: { accelerator: string };
    };
    const peak = peakMiB(stored.hostCgroup.dirs);
    const budget = hostOverheadMiB(stored.vm.accelerator as string);
    const k = `overhead.${c.key}`;
    const what = `host cgroup peak, a ${LIMIT_MIB} MiB container at its limit (VM ${vm} MiB)`;
    ctx.results.add(S, `${k}.peak`, `${what}: ${c.name}`, "MiB", round, peak);
    ctx.results.add(
      S,
      k,
      `  beyond the VM's memory (budget ${budget} MiB): ${c.name}`,
      "MiB",
      round,
      peak - vm,
    );
  } finally {
    await c.deleteForce(id);
  }
}
