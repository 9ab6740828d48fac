import { print } from "../cli/app.ts";
import { act, type CommandFactory, subcommand } from "../cli/command.ts";
import { features as describe } from "../config/features.ts";

export const features: CommandFactory = (app) =>
  subcommand("features", "show the enabled features (runtime-spec features.md JSON)").action(
    act(app, "features", () => {
      print(JSON.stringify(describe(), null, 2));
      return 0;
    }),
  );
