import { act, type CommandFactory, subcommand } from "../cli/command.ts";

export const del: CommandFactory = (app) =>
  subcommand("delete", "delete a stopped container and everything it holds (its VM, stand-in, state)")
    .option("-f, --force", "kill the container first if it is still running; an unknown id is not an error")
    .argument("<container-id>")
    .action(
      act(app, "delete", async (a, id: string, flags: { force?: boolean }) =>
        (await import("../lifecycle/delete.ts")).deleteContainer(a, id, flags.force ?? false),
      ),
    );
