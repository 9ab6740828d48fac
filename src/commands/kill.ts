import { act, type CommandFactory, subcommand } from "../cli/command.ts";

export const kill: CommandFactory = (app) =>
  subcommand("kill", "send a signal to the container's process in its VM (default TERM)")
    .option("-a, --all", "send the signal to all processes in the container")
    .argument("<container-id>")
    .argument("[signal]", "number, name or SIG-name", "TERM")
    .action(
      act(app, "kill", async (a, id: string, signal: string, flags: { all?: boolean }) =>
        (await import("../lifecycle/kill.ts")).killContainer(a, id, signal, flags.all ?? false),
      ),
    );
