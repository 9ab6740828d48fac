import type { CommandFactory } from "../cli/command.ts";
import { checkpoint } from "./checkpoint.ts";
import { create } from "./create.ts";
import { del } from "./delete.ts";
import { events } from "./events.ts";
import { exec } from "./exec.ts";
import { features } from "./features.ts";
import { kill } from "./kill.ts";
import { list } from "./list.ts";
import { pause } from "./pause.ts";
import { ps } from "./ps.ts";
import { restore } from "./restore.ts";
import { resume } from "./resume.ts";
import { run } from "./run.ts";
import { spec } from "./spec.ts";
import { start } from "./start.ts";
import { state } from "./state.ts";
import { update } from "./update.ts";
import { version } from "./version.ts";

/** The subcommand table, in runc's order. */
export const commands: CommandFactory[] = [
  checkpoint,
  create,
  del,
  events,
  exec,
  features,
  kill,
  list,
  pause,
  ps,
  restore,
  resume,
  run,
  spec,
  start,
  state,
  update,
  version,
];
