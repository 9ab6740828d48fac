import { act, type CommandFactory, subcommand } from "../cli/command.ts";

export const resume: CommandFactory = (app) =>
  subcommand("resume", "thaw a paused container's VM")
    .argument("<container-id>")
    .action(
      act(app, "resume", async (a, id: string) =>
        (await import("../lifecycle/pause.ts")).resumeContainer(a, id),
      ),
    );
