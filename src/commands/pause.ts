import { act, type CommandFactory, subcommand } from "../cli/command.ts";
import { pauseContainer } from "../lifecycle/pause.ts";

export const pause: CommandFactory = (app) =>
  subcommand("pause", "freeze the container's whole VM")
    .argument("<container-id>")
    .action(act(app, "pause", (a, id: string) => pauseContainer(a, id)));
