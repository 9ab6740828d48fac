import { NotImplementedError } from "../errors.ts";
import type { RuntimeContext } from "./context.ts";

export async function checkpointContainer(
  _ctx: RuntimeContext,
  _id: string,
  _flags: { imagePath: string; leaveRunning?: boolean },
): Promise<number> {
  throw new NotImplementedError("checkpoint");
}

export async function restoreContainer(_ctx: RuntimeContext, _id: string): Promise<number> {
  throw new NotImplementedError("restore");
}
