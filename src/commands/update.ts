import { act, type CommandFactory, integer, subcommand } from "../cli/command.ts";
import type { UpdateFlags } from "../lifecycle/update.ts";

export const update: CommandFactory = (app) =>
  subcommand("update", "update the resource limits of a container (its cgroup inside the VM)")
    .option("-r, --resources <file>", "linux resources JSON ('-' for stdin)")
    .option("--memory <bytes>", "memory limit", integer("--memory"))
    .option("--memory-reservation <bytes>", "memory soft limit", integer("--memory-reservation"))
    .option("--memory-swap <bytes>", "memory plus swap limit", integer("--memory-swap"))
    .option("--cpu-shares <n>", "CPU shares (relative weight)", integer("--cpu-shares"))
    .option("--cpu-share <n>", "alias of --cpu-shares", integer("--cpu-share"))
    .option("--cpu-quota <us>", "CPU CFS quota", integer("--cpu-quota"))
    .option("--cpu-period <us>", "CPU CFS period", integer("--cpu-period"))
    .option("--cpuset-cpus <list>", "CPUs to use")
    .option("--cpuset-mems <list>", "memory nodes to use")
    .option("--pids-limit <n>", "maximum number of pids", integer("--pids-limit"))
    .option("--blkio-weight <n>", "block IO weight", integer("--blkio-weight"))
    .option("--kernel-memory <bytes>", "accepted for runc compatibility (deprecated)")
    .option("--kernel-memory-tcp <bytes>", "accepted for runc compatibility (deprecated)")
    .option("--cpu-rt-period <us>", "accepted for runc compatibility")
    .option("--cpu-rt-runtime <us>", "accepted for runc compatibility")
    .option("--l3-cache-schema <s>", "accepted for runc compatibility")
    .option("--mem-bw-schema <s>", "accepted for runc compatibility")
    .argument("<container-id>")
    .action(
      act(app, "update", async (a, id: string, flags: UpdateFlags) =>
        (await import("../lifecycle/update.ts")).updateContainer(a, id, flags),
      ),
    );
