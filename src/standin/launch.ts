/**
 * What `create` (or `exec`) hands its stand-in: one JSON file in the container's state
 * directory, validated like every other input. The stand-in reports back once, on fd 3:
 * one JSON line {"ok":true,"pid":N} or {"ok":false,"error":"..."}.
 */
import { closeSync, writeSync } from "node:fs";
import { z } from "zod";
import { GuestLayerKind } from "../protocol/guest-layout.ts";
import { fdReader } from "../sys/fdstream.ts";

/** The caller's logging (log.ts LoggerOptions), so a stand-in logs where its caller does. */
const LogSpec = z.object({
  logFile: z.string().optional(),
  logFormat: z.enum(["text", "json"]),
  globalLogs: z.array(z.string()),
  debug: z.boolean(),
});

const Terminal = z.object({
  /** --console-socket: send the pty master there. */
  consoleSocket: z.string().optional(),
  /** --console: an existing pty slave (the seed's option). */
  console: z.string().optional(),
});

export const ContainerLaunch = z.object({
  kind: z.literal("container"),
  id: z.string(),
  root: z.string(),
  stateDir: z.string(),
  hypervisor: z.object({ path: z.string(), args: z.array(z.string()) }),
  guestConfig: z.record(z.string(), z.unknown()),
  shares: z.array(
    z.object({
      field: z.string(),
      source: z.string(),
      target: z.string(),
      file: z.boolean(),
      readonly: z.boolean(),
    }),
  ),
  terminal: Terminal.optional(),
  bootTimeoutMs: z.number().int().positive(),
  detached: z.boolean(),
  /** The stand-in's network namespace (lifecycle/namespaces.ts StandinNetwork). */
  network: z.union([
    z.object({ kind: z.literal("own") }),
    z.object({ kind: z.literal("path"), path: z.string() }),
  ]),
  /** The VM's network cards (hypervisor/nics.ts): a tap for each, unless `taps` is false. */
  nics: z.number().int().min(0),
  /** false: the cards are hub ports (nics.ts "hub"), no tap is opened. */
  taps: z.boolean(),
  /** The container writes to a layer on the VM's own disk (config/writable-layer.ts). */
  guestLayer: GuestLayerKind.optional(),
  /** A template snapshot to restore instead of booting (hypervisor/template.ts). */
  incoming: z.string().optional(),
  /**
   * restore: the guest restores the container's tree from this checkpoint (its directories
   * are among `shares`, standin/checkpoint.ts) instead of creating it.
   */
  restore: z
    .object({ tcpEstablished: z.boolean(), fileLocks: z.boolean(), extUnixSk: z.boolean() })
    .optional(),
  /** The host cgroup to join before QEMU starts (controller -> directory), if any. */
  cgroup: z.record(z.string(), z.string()).optional(),
  log: LogSpec,
});
export type ContainerLaunch = z.infer<typeof ContainerLaunch>;

const Share = ContainerLaunch.shape.shares.element;

/**
 * A pod's container (lifecycle/create-member.ts): no VM of its own; its stand-in binds its
 * shares into the sandbox's, creates it through the sandbox's hub, then serves its own hub.
 */
export const MemberLaunch = z.object({
  kind: z.literal("member"),
  id: z.string(),
  root: z.string(),
  stateDir: z.string(),
  sandbox: z.object({ id: z.string(), stateDir: z.string() }),
  guestConfig: z.record(z.string(), z.unknown()),
  shares: z.array(Share),
  /** The sandbox container's namespaces it joins in the guest. */
  join: z.array(z.enum(["pid", "ipc", "uts"])),
  terminal: Terminal.optional(),
  detached: z.boolean(),
  log: LogSpec,
});
export type MemberLaunch = z.infer<typeof MemberLaunch>;

export const ExecLaunch = z.object({
  kind: z.literal("exec"),
  id: z.string(),
  execId: z.string(),
  stateDir: z.string(),
  process: z.record(z.string(), z.unknown()),
  terminal: Terminal.optional(),
  detached: z.boolean(),
  log: LogSpec,
});
export type ExecLaunch = z.infer<typeof ExecLaunch>;

/*
 * `detached`: the call that started the stand-in returns without waiting for it (create,
 * exec -d). The stand-in's exit status is then for the manager's subreaper, which only gets
 * it if the stand-in is its child when it exits: a stand-in that finishes before its
 * starter has exited waits to be re-parented first (runc leaves that zombie to the subreaper).
 */
export const Launch = z.discriminatedUnion("kind", [ContainerLaunch, MemberLaunch, ExecLaunch]);

export const ReadyMessage = z.union([
  z.object({
    ok: z.literal(true),
    pid: z.number().int(),
    guestPid: z.number().int().optional(),
    /** The container's VM: recorded by create, the one writer of the state while creating. */
    qemu: z.object({ pid: z.number().int(), startTime: z.number().int() }).optional(),
  }),
  z.object({ ok: z.literal(false), error: z.string() }),
]);
export type ReadyMessage = z.infer<typeof ReadyMessage>;

export const READY_FD = 3;

let reportedUp = false;

/** Whether the starter was told that this stand-in is up: only then is its exit status wanted. */
export function reportedReady(): boolean {
  return reportedUp;
}

/**
 * Sends the one ready message to the parent. An exec stand-in then closes the link; a
 * container's keeps it (watchStarter) until its create process has finished.
 */
export function reportReady(msg: ReadyMessage, keepLink = false): void {
  reportedUp = msg.ok;
  try {
    writeSync(READY_FD, `${JSON.stringify(msg)}\n`);
    if (!keepLink) closeSync(READY_FD);
  } catch {
    // The caller is gone (killed): nobody to tell.
  }
}

/**
 * Calls `onGone` when the process that started this stand-in has closed its end of the
 * ready link: it finished (create closes it as its last act), or it was killed. The
 * parent never writes on the link, so end of file is the one event (no polling of pids).
 */
export function watchStarter(onGone: () => void): void {
  void (async () => {
    try {
      for await (const _ of fdReader(READY_FD)) {
        // Nothing is sent this way.
      }
    } catch {
      // An error on the link means the same: the parent is gone.
    }
    onGone();
  })();
}
