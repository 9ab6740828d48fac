import type { App } from "../cli/app.ts";
import type { CreateFlags } from "../commands/create.ts";
import { NotImplementedError } from "../errors.ts";

export async function runContainer(
  _app: App,
  _id: string,
  _flags: CreateFlags & { keep?: boolean },
): Promise<number> {
  throw new NotImplementedError("run");
}
