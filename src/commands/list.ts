import { print } from "../cli/app.ts";
import { act, type CommandFactory, subcommand } from "../cli/command.ts";
import { UsageError } from "../errors.ts";

export const list: CommandFactory = (app) =>
  subcommand("list", "list containers started by this runtime with the given root")
    .alias("ls")
    .option("-f, --format <format>", "table or json", "table")
    .option("-q, --quiet", "display only container ids")
    .option("-a, --all", "add the VM's details: hypervisor, kernel, image and resources")
    .action(
      act(app, "list", async (a, flags: { format: string; quiet?: boolean; all?: boolean }) => {
        if (flags.format !== "table" && flags.format !== "json") {
          throw new UsageError(`--format: expected table or json, got ${JSON.stringify(flags.format)}`);
        }
        const { formatList, listContainers } = await import("../lifecycle/query.ts");
        const rows = listContainers(a.store);
        print(
          formatList(rows, { format: flags.format, quiet: flags.quiet ?? false, all: flags.all ?? false }),
        );
        return 0;
      }),
    );
