import { act, type CommandFactory, subcommand } from "../cli/command.ts";
import { type CreateFlags, withCreateFlags } from "./create.ts";

export const run: CommandFactory = (app) =>
  withCreateFlags(subcommand("run", "create and start a container, then wait for it unless -d"))
    .option("--keep", "do not delete the container after it exits")
    .option("--no-subreaper", "accepted for runc compatibility")
    .argument("<container-id>")
    .action(
      act(app, "run", async (a, id: string, flags: CreateFlags & { keep?: boolean }) =>
        (await import("../lifecycle/run.ts")).runContainer(a, id, flags),
      ),
    );
