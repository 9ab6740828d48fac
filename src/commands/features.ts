import { print } from "../cli/app.ts";
import { act, type CommandFactory, subcommand } from "../cli/command.ts";

export const features: CommandFactory = (app) =>
  subcommand("features", "show the enabled features (runtime-spec features.md JSON)").action(
    act(app, "features", async () => {
      const { features: describe } = await import("../config/features.ts");
      print(JSON.stringify(describe(), null, 2));
      return 0;
    }),
  );
