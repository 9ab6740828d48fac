import { act, type CommandFactory, subcommand } from "../cli/command.ts";

export const checkpoint: CommandFactory = (app) =>
  subcommand("checkpoint", "checkpoint a running container (a snapshot of its VM)")
    .option("--image-path <dir>", "path for saving the checkpoint", "checkpoint")
    .option("--work-path <dir>", "path for saving work files and logs")
    .option("--parent-path <dir>", "path for previous checkpoint images")
    .option("--leave-running", "leave the process running after checkpointing")
    .option("--tcp-established", "accepted for runc compatibility")
    .option("--ext-unix-sk", "accepted for runc compatibility")
    .option("--shell-job", "accepted for runc compatibility")
    .option("--lazy-pages", "accepted for runc compatibility")
    .option("--status-fd <fd>", "accepted for runc compatibility")
    .option("--page-server <addr>", "accepted for runc compatibility")
    .option("--file-locks", "accepted for runc compatibility")
    .option("--pre-dump", "accepted for runc compatibility")
    .option("--manage-cgroups-mode <mode>", "accepted for runc compatibility")
    .option("--empty-ns <ns>", "accepted for runc compatibility")
    .option("--auto-dedup", "accepted for runc compatibility")
    .argument("<container-id>")
    .action(
      act(app, "checkpoint", async (a, id: string, flags: { imagePath: string; leaveRunning?: boolean }) =>
        (await import("../lifecycle/checkpoint.ts")).checkpointContainer(a, id, flags),
      ),
    );
