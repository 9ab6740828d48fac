import { print } from "../cli/app.ts";
import { act, type CommandFactory, subcommand } from "../cli/command.ts";

export const state: CommandFactory = (app) =>
  subcommand("state", "output the state of a container (runtime-spec JSON)")
    .argument("<container-id>")
    .action(
      act(app, "state", async (a, id: string) => {
        const { specState } = await import("../lifecycle/query.ts");
        print(JSON.stringify(specState(a.store, id), null, 2));
        return 0;
      }),
    );
