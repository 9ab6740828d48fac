import { act, type CommandFactory, subcommand } from "../cli/command.ts";

export const restore: CommandFactory = (app) =>
  subcommand("restore", "restore a container from a checkpoint")
    .option("-b, --bundle <dir>", "path to the root of the bundle directory", ".")
    .option("--image-path <dir>", "path to the checkpoint", "checkpoint")
    .option("--work-path <dir>", "path for work files and logs")
    .option("--console-socket <path>", "unix socket that receives the pty master")
    .option("-d, --detach", "detach from the container's process")
    .option("--pid-file <file>", "file to write the stand-in's pid to")
    .option("--no-subreaper", "accepted for runc compatibility")
    .option("--no-pivot", "accepted for runc compatibility")
    .option("--tcp-established", "accepted for runc compatibility")
    .option("--ext-unix-sk", "accepted for runc compatibility")
    .option("--shell-job", "accepted for runc compatibility")
    .option("--file-locks", "accepted for runc compatibility")
    .option("--manage-cgroups-mode <mode>", "accepted for runc compatibility")
    .option("--empty-ns <ns>", "accepted for runc compatibility")
    .option("--auto-dedup", "accepted for runc compatibility")
    .option("--lazy-pages", "accepted for runc compatibility")
    .option("--lsm-profile <p>", "accepted for runc compatibility")
    .option("--lsm-mount-context <c>", "accepted for runc compatibility")
    .argument("<container-id>")
    .action(
      act(app, "restore", async (a, id: string) =>
        (await import("../lifecycle/checkpoint.ts")).restoreContainer(a, id),
      ),
    );
