import { act, type CommandFactory, subcommand } from "../cli/command.ts";
import { resumeContainer } from "../lifecycle/pause.ts";

export const resume: CommandFactory = (app) =>
  subcommand("resume", "thaw a paused container's VM")
    .argument("<container-id>")
    .action(act(app, "resume", (a, id: string) => resumeContainer(a, id)));
