import type { App } from "../cli/app.ts";
import { NotImplementedError } from "../errors.ts";

export async function startContainer(_app: App, _id: string): Promise<number> {
  throw new NotImplementedError("start");
}
