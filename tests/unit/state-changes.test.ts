import { describe, expect, test } from "bun:test";
import type { Channel } from "../../src/protocol/channel.ts";
import type { Hub } from "../../src/standin/hub.ts";
import { serveStateChanges } from "../../src/standin/state-changes.ts";
import type { StoredState } from "../../src/state/schema.ts";
import { StateStore } from "../../src/state/store.ts";
import { tempDir } from "../lib/cli.ts";

function created(id: string): StoredState {
  return {
    ociVersion: "1.2.0",
    id,
    status: "created",
    bundle: "/b",
    rootfs: "/b/rootfs",
    created: new Date(0).toISOString(),
    owner: "root",
    annotations: {},
  };
}

/** The stand-in's state writer with a fake hub, and an agent whose `start` does `onStart`. */
function standin(onStart: (store: StateStore) => void) {
  const store = new StateStore(tempDir());
  store.reserve("c", created("c"));
  const hub = { local: {} } as unknown as Hub;
  const agent = {
    call: async () => {
      onStart(store);
      return {};
    },
  } as unknown as Channel;
  serveStateChanges(hub, agent, store, "c");
  const local = (hub as unknown as { local: Record<string, () => Promise<unknown>> }).local;
  return { store, start: () => local.start?.() };
}

describe("the stand-in records status changes", () => {
  test("start: created -> running", async () => {
    const s = standin(() => {});
    await s.start();
    expect(s.store.read("c").status).toBe("running");
  });

  test("a workload that exits before crun's start answer stays stopped, and start succeeds", async () => {
    // The exit path records stopped while the start call is still waiting for its answer.
    const s = standin((store) => store.update("c", (st) => ({ ...st, status: "stopped", exitStatus: 0 })));
    await s.start();
    const st = s.store.read("c");
    expect(st.status).toBe("stopped");
    expect(st.exitStatus).toBe(0);
  });

  test("start of a container that is not created is refused, naming both states", async () => {
    const s = standin(() => {});
    s.store.update("c", (st) => ({ ...st, status: "stopped" }));
    await expect(s.start()).rejects.toThrow(/cannot start container "c": it is stopped/);
  });
});
