import { act, type CommandFactory, subcommand } from "../cli/command.ts";
import type { CheckpointFlags } from "../lifecycle/checkpoint.ts";

export const checkpoint: CommandFactory = (app) =>
  subcommand("checkpoint", "checkpoint a running container (CRIU in its VM)")
    .option("--image-path <dir>", "path for saving the checkpoint", "checkpoint")
    .option("--work-path <dir>", "path for saving work files and logs")
    .option("--parent-path <dir>", "path for previous checkpoint images")
    .option("--leave-running", "leave the process running after checkpointing")
    .option("--tcp-established", "allow open TCP connections")
    .option("--ext-unix-sk", "allow external unix sockets")
    .option("--shell-job", "accepted (a terminal is always restored, on a new pty)")
    .option("--lazy-pages", "not supported")
    .option("--status-fd <fd>", "not supported")
    .option("--page-server <addr>", "not supported")
    .option("--file-locks", "handle file locks")
    .option("--pre-dump", "not supported")
    .option("--manage-cgroups-mode <mode>", "accepted (the guest's CRIU uses soft)")
    .option("--empty-ns <ns>", "not supported")
    .option("--auto-dedup", "accepted, no effect")
    .argument("<container-id>")
    .action(
      act(app, "checkpoint", async (a, id: string, flags: CheckpointFlags) =>
        (await import("../lifecycle/checkpoint.ts")).checkpointContainer(a, id, flags),
      ),
    );
