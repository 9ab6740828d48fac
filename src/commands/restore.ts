import { act, type CommandFactory, subcommand } from "../cli/command.ts";
import type { RestoreFlags } from "../lifecycle/checkpoint.ts";

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
    .option("--tcp-established", "allow open TCP connections")
    .option("--ext-unix-sk", "allow external unix sockets")
    .option("--shell-job", "accepted (a terminal is always restored, on a new pty)")
    .option("--file-locks", "handle file locks")
    .option("--manage-cgroups-mode <mode>", "accepted (the guest's CRIU uses soft)")
    .option("--empty-ns <ns>", "not supported")
    .option("--auto-dedup", "accepted, no effect")
    .option("--lazy-pages", "not supported")
    .option("--lsm-profile <p>", "accepted for runc compatibility")
    .option("--lsm-mount-context <c>", "accepted for runc compatibility")
    .argument("<container-id>")
    .action(
      act(app, "restore", async (a, id: string, flags: RestoreFlags) =>
        (await import("../lifecycle/checkpoint.ts")).restoreContainer(a, id, flags),
      ),
    );
