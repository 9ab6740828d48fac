import { act, type CommandFactory, subcommand } from "../cli/command.ts";
import { versionText } from "../cli/version-text.ts";

export const version: CommandFactory = (app) =>
  subcommand("version", "print the version").action(
    act(app, "version", () => {
      process.stdout.write(versionText());
      return 0;
    }),
  );
