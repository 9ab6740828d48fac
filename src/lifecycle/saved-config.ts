/**
 * The configuration a container was created with. runtime-spec (runtime.md, "create"):
 * changes to config.json after create MUST NOT affect the container. So create keeps its
 * validated copy in the state directory, and start, exec and delete read only that copy.
 */
import { join } from "node:path";
import { type OciConfig, OciConfig as OciSchema } from "../config/oci-schema.ts";
import { readJsonFile } from "../config/validate.ts";
import type { StateStore } from "../state/store.ts";
import { writeFileNamed } from "../sys/files.ts";

const SAVED = "config.json";

export function saveConfig(stateDir: string, oci: OciConfig): void {
  writeFileNamed(join(stateDir, SAVED), JSON.stringify(oci));
}

export function savedConfig(store: StateStore, id: string): OciConfig {
  return readJsonFile(OciSchema, join(store.dir(id), SAVED));
}
