import type { App } from "../cli/app.ts";
import type { ExecFlags } from "../commands/exec.ts";
import { NotImplementedError } from "../errors.ts";

export async function execProcess(
  _app: App,
  _id: string,
  _cmd: string[],
  _flags: ExecFlags,
): Promise<number> {
  throw new NotImplementedError("exec");
}
