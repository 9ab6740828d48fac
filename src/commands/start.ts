import { act, type CommandFactory, subcommand } from "../cli/command.ts";

export const start: CommandFactory = (app) =>
  subcommand("start", "run the user process of a created container")
    .argument("<container-id>")
    .action(
      act(app, "start", async (a, id: string) =>
        (await import("../lifecycle/start.ts")).startContainer(a, id),
      ),
    );
