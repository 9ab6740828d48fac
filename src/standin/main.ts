/** `__standin <state-dir>/<launch file>`: the hidden role create and exec start. */
import { readJsonFile } from "../config/validate.ts";
import { runContainerStandin } from "./container.ts";
import { runExecStandin } from "./exec.ts";
import { Launch, reportReady } from "./launch.ts";
import { restoreBlockingAtExit } from "./stdio.ts";

export async function runStandin(argv: string[]): Promise<number> {
  const file = argv[0];
  if (!file) {
    process.stderr.write("usage: __standin LAUNCH-FILE\n");
    return 1;
  }
  let spec: ReturnType<typeof Launch.parse>;
  try {
    spec = readJsonFile(Launch, file);
  } catch (err) {
    reportReady({ ok: false, error: (err as Error).message });
    return 1;
  }
  process.title = `cc-oci-runtime standin ${spec.id}`;
  restoreBlockingAtExit();
  return spec.kind === "container" ? runContainerStandin(spec) : runExecStandin(spec);
}
