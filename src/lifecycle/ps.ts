import type { App } from "../cli/app.ts";
import { NotImplementedError } from "../errors.ts";

export async function psContainer(_app: App, _id: string, _format: string): Promise<string> {
  throw new NotImplementedError("ps");
}
