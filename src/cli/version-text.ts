import { COMMIT, NAME, OCI_VERSION, VERSION } from "../config/build.ts";

export function versionText(): string {
  return `${NAME} version ${VERSION}\ncommit: ${COMMIT}\nspec: ${OCI_VERSION}\n`;
}
