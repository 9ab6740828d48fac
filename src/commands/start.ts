import { act, type CommandFactory, subcommand } from "../cli/command.ts";
import { startContainer } from "../lifecycle/start.ts";

export const start: CommandFactory = (app) =>
  subcommand("start", "run the user process of a created container")
    .argument("<container-id>")
    .action(act(app, "start", (a, id: string) => startContainer(a, id)));
