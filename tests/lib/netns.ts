/**
 * Network namespaces for tests (root only). The machine's own namespace is never
 * configured: every link, address and route is made inside a namespace the test creates
 * (`ip -n NAME ...`), and the library under test runs inside one, on this thread only.
 */
import { closeSync, openSync, statSync } from "node:fs";
import { joinNamespace } from "../../src/sys/namespaces.ts";

export const IS_ROOT = process.getuid?.() === 0;

/** Runs a command; its stdout, or an error with its stderr. */
export function run(argv: string[], stdin?: string): string {
  const r = Bun.spawnSync(argv, { stdin: stdin === undefined ? "ignore" : Buffer.from(stdin) });
  if (r.exitCode !== 0)
    throw new Error(`${argv.join(" ")}: exit ${r.exitCode}: ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}

/** Namespaces named ccnet-test-PID-SUFFIX, created now, all deleted by removeAll(). */
export class TestNamespaces {
  private readonly names: string[] = [];

  constructor(private readonly tag: string) {}

  add(suffix: string): string {
    const name = `ccnet-test-${process.pid}-${this.tag}-${suffix}`;
    run(["ip", "netns", "add", name]);
    this.names.push(name);
    return name;
  }

  /** Deleting a namespace deletes its links; a veth takes its peer with it. */
  removeAll(): void {
    for (const name of this.names.splice(0)) Bun.spawnSync(["ip", "netns", "delete", name]);
  }
}

/** `ip -n ns ARGS...` */
export const ipIn = (ns: string, ...args: string[]) => run(["ip", "-n", ns, ...args]);

/**
 * Runs fn with this thread in namespace ns, and back in its own after, even when fn
 * throws. fn must be synchronous: the thread is the JS thread, and anything else that ran
 * while it waited would run in ns. Checks that the switch happened before fn runs.
 */
export function inNetns<T>(ns: string, fn: () => T): T {
  const own = openSync("/proc/thread-self/ns/net", "r");
  try {
    joinNamespace(`/run/netns/${ns}`, "network");
    try {
      if (statSync("/proc/thread-self/ns/net").ino !== statSync(`/run/netns/${ns}`).ino) {
        throw new Error(`setns into ${ns} did not take`);
      }
      return fn();
    } finally {
      joinNamespace(`/proc/self/fd/${own}`, "network");
    }
  } finally {
    closeSync(own);
  }
}
