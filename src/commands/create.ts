import { act, type CommandFactory, integer, subcommand } from "../cli/command.ts";
import type { CreateRequest } from "../lifecycle/create.ts";

/** The flags are the library's create request, as commander parses them. */
export type CreateFlags = CreateRequest;

export const create: CommandFactory = (app) =>
  withCreateFlags(subcommand("create", "create a container (boot its VM, do not run the user process yet)"))
    .argument("<container-id>")
    .action(
      act(app, "create", async (a, id: string, flags: CreateFlags) =>
        (await import("../lifecycle/create.ts")).createContainer(a, id, flags),
      ),
    );

/** The flags create and run share (runc's). */
export function withCreateFlags(cmd: ReturnType<typeof subcommand>) {
  return cmd
    .option("-b, --bundle <dir>", "path to the root of the bundle directory", ".")
    .option("--console-socket <path>", "unix socket that receives the pty master of a terminal container")
    .option("--console <path>", "existing pty slave to use as the container's terminal (the seed's option)")
    .option("--pid-file <file>", "file to write the host pid of the container's stand-in process to")
    .option("--no-pivot", "accepted, no effect: crun pivots into the rootfs inside the guest")
    .option("--no-new-keyring", "accepted, no effect: the keyring is the guest kernel's own")
    .option(
      "--preserve-fds <n>",
      "only 0: host file descriptors cannot be passed into a VM (N > 0 is an error)",
      integer("--preserve-fds"),
    )
    .option("-d, --detach", "detach from the container's process");
}
