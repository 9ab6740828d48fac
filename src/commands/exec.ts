import { act, type CommandFactory, collect, integer, subcommand } from "../cli/command.ts";
import { EXEC_FAILED } from "../errors.ts";
import type { ExecRequest } from "../lifecycle/exec.ts";

/** The flags are the library's exec request, as commander parses them. */
export type ExecFlags = ExecRequest;

export const exec: CommandFactory = (app) =>
  subcommand("exec", "run a new process inside a running container")
    .option("-p, --process <file>", "process.json describing the process ('-' for stdin)")
    .option("-t, --tty", "allocate a pseudo-TTY")
    .option("--console-socket <path>", "unix socket that receives the pty master")
    .option("-d, --detach", "detach from the process")
    .option("--pid-file <file>", "file to write the host pid of the process's stand-in to")
    .option("-e, --env <K=V>", "set an environment variable (repeatable)", collect)
    .option("--cwd <dir>", "current working directory in the container")
    .option("-u, --user <uid[:gid]>", "user to run as")
    .option("-g, --additional-gids <gid>", "additional group (repeatable)", collect)
    .option("-c, --cap <cap>", "add a capability (repeatable)", collect)
    .option("--no-new-privs", "set no_new_privs")
    .option(
      "--preserve-fds <n>",
      "only 0: host file descriptors cannot be passed into a VM (N > 0 is an error)",
      integer("--preserve-fds"),
    )
    .option(
      "--apparmor <profile>",
      "accepted, no effect: the guest kernel runs no LSM (the VM is the boundary)",
    )
    .option(
      "--process-label <label>",
      "accepted, no effect: the guest kernel runs no LSM (the VM is the boundary)",
    )
    .option("--cgroup <path>", "accepted for runc compatibility")
    .option("--ignore-paused", "accepted for runc compatibility")
    .passThroughOptions()
    .argument("<container-id>")
    .argument("[command...]")
    .action(
      act(
        app,
        "exec",
        async (a, id: string, command: string[], flags: ExecFlags) =>
          (await import("../lifecycle/exec.ts")).execProcess(a, id, command, flags),
        EXEC_FAILED,
      ),
    );
