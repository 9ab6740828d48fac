import { print } from "../cli/app.ts";
import { act, type CommandFactory, subcommand } from "../cli/command.ts";

export const ps: CommandFactory = (app) =>
  subcommand("ps", "show the processes inside a container")
    .option("-f, --format <format>", "table (processes in the guest) or json (host pids)", "table")
    .passThroughOptions()
    .argument("<container-id>")
    .argument("[ps-options...]")
    .action(
      act(app, "ps", async (a, id: string, _psArgs: string[], flags: { format: string }) => {
        print(await (await import("../lifecycle/ps.ts")).psContainer(a, id, flags.format));
        return 0;
      }),
    );
