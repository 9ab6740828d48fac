import { act, type CommandFactory, subcommand } from "../cli/command.ts";

export const spec: CommandFactory = (app) =>
  subcommand("spec", "create a new specification file (config.json) for a busybox rootfs")
    .option("-b, --bundle <dir>", "path to the root of the bundle directory", ".")
    .option("--rootless", "generate a configuration for a rootless container")
    .action(
      act(app, "spec", async (_a, flags: { bundle: string; rootless?: boolean }) => {
        (await import("../config/default-spec.ts")).writeDefaultSpec(flags.bundle, flags.rootless ?? false);
        return 0;
      }),
    );
