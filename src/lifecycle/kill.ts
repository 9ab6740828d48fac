import type { App } from "../cli/app.ts";
import { NotImplementedError } from "../errors.ts";

export async function killContainer(_app: App, _id: string, _signal: string, _all: boolean): Promise<number> {
  throw new NotImplementedError("kill");
}
