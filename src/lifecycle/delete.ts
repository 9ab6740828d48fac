import type { App } from "../cli/app.ts";
import { NotImplementedError } from "../errors.ts";

export async function deleteContainer(app: App, id: string, force: boolean): Promise<number> {
  if (!app.store.exists(id)) {
    // containerd always follows `delete` with `delete --force` from a cleanup process.
    if (force) return 0;
    app.store.read(id);
  }
  throw new NotImplementedError("delete");
}
