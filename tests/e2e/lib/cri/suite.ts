/**
 * The set-up a CRI test file shares (`criSuite`). beforeAll: root (with `vm`, the built
 * runtime and guest too, and the runtime's VM configuration installed the way `make install`
 * puts it: the shim's bundles carry none), the file's own `before`, containerd, runc, the CNI
 * plugins and node installed when missing, the file's Workspace, the machine's network
 * namespace read, a network namespace of the file's, CriContainerd started in it. afterAll:
 * the teardown, then the file's own `after` checks, the machine's network namespace as it was
 * and the file's gone; it fails with every problem found, and, when a test of the file failed,
 * with the last error lines of the runtime's global log of each handler in `logs` (read before
 * the teardown; the whole log is kept with the workspace's under build/test-results/e2e/NAME/).
 */

import { afterAll, beforeAll, test as bunTest } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { diffLines, hostNetwork, Netns } from "../netns.ts";
import { CRI_PACKAGES, ensurePackages } from "../packages.ts";
import { checkPrerequisites, installRuntimeConfig, Workspace } from "../workspace.ts";
import { CriContainerd, type CriOptions } from "./containerd.ts";

export interface CriSuiteOptions {
  /** beforeAll's and afterAll's time limit, and each test's unless it gives its own. */
  ms: number;
  /** The handlers boot VMs: checkPrerequisites() and the runtime's VM configuration installed. */
  vm?: boolean;
  /** Runtime handlers whose global log (`runtimeRoot(H)/cc-oci-runtime.log`) a failed test quotes. */
  logs?: string[];
  /** For CriContainerd.start. */
  cri?: CriOptions;
  /** Runs in beforeAll before anything is installed or made (after the root check). */
  before?: () => void | Promise<void>;
  /** Runs in afterAll after the teardown: what is wrong, one item a problem (empty: nothing). */
  after?: () => string[] | Promise<string[]>;
}

export interface CriSuite {
  /** The file's workspace, network namespace and containerd; each throws if the set-up failed. */
  readonly ws: Workspace;
  readonly netns: Netns;
  readonly containerd: CriContainerd;
  /** bun's test (time limit `ms` by default), its failure noted for afterAll. */
  test(title: string, fn: () => Promise<void>, ms?: number): void;
}

/** Registers the file's beforeAll and afterAll; `name` names its workspace. */
export function criSuite(name: string, opts: CriSuiteOptions): CriSuite {
  let ws: Workspace | undefined;
  let netns: Netns | undefined;
  let containerd: CriContainerd | undefined;
  /** The machine's network namespace before the file's was made. */
  let before = "";
  let failed = false;

  beforeAll(async () => {
    if (opts.vm) checkPrerequisites();
    else if (process.getuid?.() !== 0) throw new Error("the CRI tests need root (containerd does)");
    await opts.before?.();
    await ensurePackages(CRI_PACKAGES);
    ws = new Workspace(name);
    if (opts.vm) ws.onTeardown("runtime config", installRuntimeConfig());
    before = await hostNetwork();
    netns = await Netns.create(ws);
    containerd = await CriContainerd.start(ws, netns, opts.cri);
  }, opts.ms);

  afterAll(async () => {
    const log = failed && ws && containerd ? errorTail(ws, containerd, opts.logs ?? []) : "";
    await ws?.teardown();
    const problems = [...((await opts.after?.()) ?? [])];
    if (before) {
      const diff = diffLines(before, await hostNetwork());
      if (diff) problems.push(`the machine's network namespace changed:\n${diff}`);
    }
    if (netns && existsSync(netns.path)) problems.push(`${netns.path} is still there`);
    if (log) problems.push(`a test failed; ${log}`);
    if (problems.length) throw new Error(problems.join("\n"));
  }, opts.ms);

  const need = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error("the set-up failed");
    return v;
  };
  return {
    get ws() {
      return need(ws);
    },
    get netns() {
      return need(netns);
    },
    get containerd() {
      return need(containerd);
    },
    test(title, fn, ms = opts.ms) {
      bunTest(
        title,
        async () => {
          try {
            await fn();
          } catch (err) {
            failed = true;
            throw err;
          }
        },
        ms,
      );
    },
  };
}

/**
 * The last `n` error lines (`<ISO time> [pid] error: msg`) of each handler's global log, named
 * as the teardown keeps it when it is in the workspace (build/test-results/e2e/NAME/, the
 * path's slashes as `__`).
 */
function errorTail(ws: Workspace, c: CriContainerd, handlers: string[], n = 20): string {
  const parts: string[] = [];
  for (const h of handlers) {
    const file = join(c.runtimeRoot(h), "cc-oci-runtime.log");
    const text = existsSync(file) ? readFileSync(file, "utf8") : "";
    const errors = text.split("\n").filter((l) => /^\S+ \[\d+\] error: /.test(l));
    const rel = relative(ws.dir, file);
    const kept = rel.startsWith("..")
      ? file
      : `build/test-results/e2e/${ws.name}/${rel.replaceAll("/", "__")}`;
    if (errors.length)
      parts.push(`${h}'s global log (${kept}), last error lines:\n${errors.slice(-n).join("\n")}`);
  }
  return parts.join("\n");
}
