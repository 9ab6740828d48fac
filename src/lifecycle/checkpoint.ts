import type { App } from "../cli/app.ts";
import { NotImplementedError } from "../errors.ts";

export async function checkpointContainer(
  _app: App,
  _id: string,
  _flags: { imagePath: string; leaveRunning?: boolean },
): Promise<number> {
  throw new NotImplementedError("checkpoint");
}

export async function restoreContainer(_app: App, _id: string): Promise<number> {
  throw new NotImplementedError("restore");
}
