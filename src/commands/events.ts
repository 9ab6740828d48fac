import { print } from "../cli/app.ts";
import { act, type CommandFactory, subcommand } from "../cli/command.ts";

export const events: CommandFactory = (app) =>
  subcommand("events", "display container events and resource usage")
    .option("--interval <duration>", "interval between stats (Go duration: 5s, 500ms)", "5s")
    .option("--stats", "display the container's stats once, then exit")
    .argument("<container-id>")
    .action(
      act(app, "events", async (a, id: string, flags: { interval: string; stats?: boolean }) =>
        (await import("../lifecycle/events.ts")).containerEvents(
          a,
          id,
          flags.interval,
          flags.stats ?? false,
          print,
        ),
      ),
    );
