import type { App } from "../cli/app.ts";
import { NotImplementedError } from "../errors.ts";

export async function containerEvents(
  _app: App,
  _id: string,
  _interval: string,
  _stats: boolean,
): Promise<number> {
  throw new NotImplementedError("events");
}
