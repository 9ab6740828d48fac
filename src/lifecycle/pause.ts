import type { App } from "../cli/app.ts";
import { NotImplementedError } from "../errors.ts";

export async function pauseContainer(_app: App, _id: string): Promise<number> {
  throw new NotImplementedError("pause");
}

export async function resumeContainer(_app: App, _id: string): Promise<number> {
  throw new NotImplementedError("resume");
}
