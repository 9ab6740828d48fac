import { act, type CommandFactory, subcommand } from "../cli/command.ts";

export const pause: CommandFactory = (app) =>
  subcommand("pause", "freeze the container's whole VM")
    .argument("<container-id>")
    .action(
      act(app, "pause", async (a, id: string) =>
        (await import("../lifecycle/pause.ts")).pauseContainer(a, id),
      ),
    );
