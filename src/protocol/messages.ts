/**
 * The one definition of what host and agent say to each other. Both sides import this
 * module (the agent runs from the same executable), so the schema cannot drift. Every
 * message received is validated here before anything acts on it.
 *
 * Handshake (host connects whenever it likes; the agent may boot before or after):
 *
 *   host                                  agent (guest PID 1)
 *    |-- hello {version} (repeated) ------->|   until answered: bytes sent before the
 *    |<------------ ok {version, uname} ----|   guest opens its port are lost
 *    |-- create {id, config, stdio} ------->|   crun create; streams wired up
 *    |<---------------------- ok {pid} -----|
 *    |-- network {interfaces} ------------->|   after create's hooks: the guest NICs take
 *    |<---------------------------- ok -----|   the namespace's addresses and routes
 *    |-- start {id} ----------------------->|   crun start
 *    |<== DATA stdout/stderr, EOF =========|
 *    |<------- event exit {id, status} -----|   after the process's output has drained
 *    |<---- event log {level, message} -----|   any time: a fault the agent survived
 *    |-- shutdown ------------------------->|   agent syncs and powers the VM off
 */
import { z } from "zod";
import { GuestLayerKind } from "./guest-layout.ts";

export const PROTOCOL_VERSION = 7;

/** Stream ids of one process's stdio; with a terminal only `tty` is used (both ways). */
export const Stdio = z.object({
  stdin: z.number().int().positive().optional(),
  stdout: z.number().int().positive().optional(),
  stderr: z.number().int().positive().optional(),
  tty: z.number().int().positive().optional(),
});
export type Stdio = z.infer<typeof Stdio>;

const id = z.string().min(1);
const ConsoleSize = z.object({ rows: z.number().int(), cols: z.number().int() });
const execId = z.string().min(1).optional();
const Json = z.record(z.string(), z.unknown());

const Family = z.union([z.literal(4), z.literal(6)]);
const Scope = z.union([z.enum(["global", "site", "link", "host", "nowhere"]), z.number().int()]);
/** One interface of the container's network namespace, as the guest NIC eth<i> takes it (sys/net-scan.ts). */
export const GuestInterface = z.object({
  name: z.string().min(1),
  mac: z.string().regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/),
  mtu: z.number().int().positive(),
  addresses: z.array(z.object({ family: Family, address: z.string(), prefixLength: z.number().int() })),
  routes: z.array(
    z.object({
      family: Family,
      dst: z.string(),
      gateway: z.string().optional(),
      prefsrc: z.string().optional(),
      metric: z.number().int().optional(),
      scope: Scope,
      protocol: z.number().int(),
    }),
  ),
});

export const Calls = {
  hello: {
    request: z.object({
      version: z.number().int(),
      /**
       * Identity of this boot, given by the host: a VM restored from a template snapshot
       * would otherwise share the template's random pool and clock with its siblings.
       */
      seed: z
        .string()
        .regex(/^[0-9a-f]{64}$/)
        .optional(),
      timeMs: z.number().optional(),
    }),
    result: z.object({ version: z.number().int(), kernel: z.string(), agentPid: z.number().int() }),
  },
  create: {
    request: z.object({
      id,
      /** config.json for crun in the guest, already rewritten by the host (guest paths). */
      config: Json,
      stdio: Stdio,
      consoleSize: ConsoleSize.optional(),
      /**
       * A container of a pod (lifecycle/pod.ts): created in its sandbox's VM, in these
       * namespaces of the sandbox container's init (the guest fills in their paths).
       */
      pod: z.object({ sandbox: id, join: z.array(z.enum(["pid", "ipc", "uts"])) }).optional(),
      /**
       * The rootfs is an overlay: the share's rootfs below, the VM's layer disk above, copied
       * into the share when the init exits, before its exit event (agent/layer.ts).
       */
      guestLayer: GuestLayerKind.optional(),
    }),
    result: z.object({ pid: z.number().int() }),
  },
  /** A pod's container that ended (or whose stand-in went): crun delete, its guest files gone. */
  remove: { request: z.object({ id }), result: z.object({}) },
  /** A pod's container paused or resumed alone (its guest cgroup frozen), not the pod's VM. */
  freeze: { request: z.object({ id, frozen: z.boolean() }), result: z.object({}) },
  start: { request: z.object({ id }), result: z.object({}) },
  exec: {
    request: z.object({
      id,
      execId: z.string().min(1),
      process: Json,
      stdio: Stdio,
      consoleSize: ConsoleSize.optional(),
    }),
    result: z.object({ pid: z.number().int() }),
  },
  signal: {
    request: z.object({ id, execId, signal: z.number().int().min(0).max(64), all: z.boolean().optional() }),
    result: z.object({}),
  },
  resize: {
    request: z.object({ id, execId, rows: z.number().int(), cols: z.number().int() }),
    result: z.object({}),
  },
  ps: {
    request: z.object({ id }),
    result: z.object({
      processes: z.array(
        z.object({
          pid: z.number().int(),
          user: z.string(),
          time: z.string(),
          cmd: z.string(),
          execId: z.string().optional(),
        }),
      ),
    }),
  },
  stats: { request: z.object({ id }), result: Json },
  update: { request: z.object({ id, resources: Json }), result: z.object({}) },
  shutdown: { request: z.object({}), result: z.object({}) },
  /**
   * Template builds only, before the snapshot: the agent runs the code a container's start
   * needs (netlink, the network schemas) once, so that every clone has it compiled already
   * (under TCG a first run of that JavaScript costs hundreds of ms).
   */
  prepare: { request: z.object({}), result: z.object({}) },
  /**
   * To the agent: guest NIC eth<card> takes `iface`, or is taken down (null: the
   * interface left the namespace, `docker network disconnect`); `dnsRelay`: loopback name servers of
   * the container's resolv.conf (Docker's embedded DNS, 127.0.0.11), which live in the
   * container's namespace on the host: the agent answers on them in the guest by asking the
   * stand-in (`dns` below).
   */
  network: {
    request: z.object({
      cards: z.array(z.object({ card: z.number().int().min(0), iface: GuestInterface.nullable() })),
      dnsRelay: z.array(z.string()).default([]),
    }),
    result: z.object({}),
  },
  /** From the agent to the stand-in: one DNS query (UDP payload, base64) for `server`, and its answer. */
  dns: {
    request: z.object({ server: z.string(), query: z.string().max(4096) }),
    result: z.object({ answer: z.string() }),
  },
  /**
   * From the agent to the stand-in, when the init of a container whose writable layer is in
   * the guest has exited (agent/layer.ts): the stand-in unpacks the layer into the host's
   * rootfs (standin/layer.ts), asking for it with sendLayer, and answers once it is there.
   * The agent reports the exit after this answer.
   */
  applyLayer: { request: z.object({ id }), result: z.object({}) },
  /** To the agent, within applyLayer: the layer as a tar archive on `stream`, then its EOF. */
  sendLayer: {
    request: z.object({ id, stream: z.number().int().positive() }),
    result: z.object({}),
  },
  /**
   * Answered by the stand-in's hub (create calls it once its hooks ran): the namespace is
   * scanned, each interface joined to its tap, and the guest told (`network` above).
   */
  connectNetwork: { request: z.object({ id }), result: z.object({ interfaces: z.array(z.string()) }) },
  /**
   * CRIU in the guest (agent/checkpoint.ts) dumps the container's process tree into
   * `imagesDir`, logs in `workDir`. To the stand-in's hub the paths are the host's (it binds
   * them into the share), to the agent the share's. Without leaveRunning the tree is killed.
   */
  checkpoint: {
    request: z.object({
      id,
      imagesDir: z.string().min(1),
      workDir: z.string().min(1),
      leaveRunning: z.boolean(),
      tcpEstablished: z.boolean(),
      fileLocks: z.boolean(),
      extUnixSk: z.boolean(),
    }),
    result: z.object({}),
  },
  /** create's counterpart from a checkpoint: the tree restored by CRIU, running, its stdio wired. */
  restore: {
    request: z.object({
      id,
      config: Json,
      stdio: Stdio,
      /** With a terminal (stdio.tty): the new pty's size, as create's. */
      consoleSize: ConsoleSize.optional(),
      imagesDir: z.string().min(1),
      workDir: z.string().min(1),
      tcpEstablished: z.boolean(),
      fileLocks: z.boolean(),
      extUnixSk: z.boolean(),
    }),
    result: z.object({ pid: z.number().int() }),
  },
  /** Answered by the stand-in's hub, not the agent: the whole VM is frozen or thawed (QMP). */
  pause: { request: z.object({ id }), result: z.object({}) },
  resume: { request: z.object({ id }), result: z.object({}) },
} as const;

export type Op = keyof typeof Calls;
export type RequestOf<O extends Op> = z.infer<(typeof Calls)[O]["request"]>;
export type ResultOf<O extends Op> = z.infer<(typeof Calls)[O]["result"]>;

/** How long the host waits for each call's answer (named, as every timeout is). */
export const CALL_TIMEOUT_MS: Record<Op, number> = {
  hello: 500,
  create: 60_000,
  start: 30_000,
  remove: 30_000,
  freeze: 10_000,
  exec: 30_000,
  signal: 10_000,
  resize: 5_000,
  ps: 10_000,
  stats: 10_000,
  update: 10_000,
  shutdown: 5_000,
  prepare: 10_000,
  network: 10_000,
  dns: 6_000,
  // A layer of gigabytes through the agent's port under TCG; the agent's applyLayer outlasts
  // the stand-in's sendLayer within it (the layer is removed only once nobody reads it).
  applyLayer: 3_660_000,
  sendLayer: 3_600_000,
  connectNetwork: 15_000,
  pause: 10_000,
  resume: 10_000,
  // CRIU under TCG: ~1 s for a shell; a large tree writes its memory through 9p.
  checkpoint: 300_000,
  restore: 300_000,
};

export const Envelope = z.union([
  z.object({
    t: z.literal("req"),
    req: z.number().int(),
    op: z.enum(Object.keys(Calls) as [Op, ...Op[]]),
    args: z.unknown(),
  }),
  z.object({ t: z.literal("res"), re: z.number().int(), ok: z.literal(true), result: z.unknown() }),
  z.object({ t: z.literal("res"), re: z.number().int(), ok: z.literal(false), error: z.string() }),
  z.object({
    t: z.literal("event"),
    event: z.literal("exit"),
    id,
    execId,
    /** Exit code, or 128+N for a death by signal N (what the stand-in exits with). */
    status: z.number().int(),
  }),
  z.object({ t: z.literal("event"), event: z.literal("oom"), id }),
  /**
   * A fault or a degraded feature in the agent, for the runtime's log (the guest lives on);
   * debug: what the agent did that the log's reader may want to time (a layer's copy).
   */
  z.object({
    t: z.literal("event"),
    event: z.literal("log"),
    level: z.enum(["debug", "warning", "error"]),
    message: z.string(),
  }),
]);
export type Envelope = z.infer<typeof Envelope>;
export type EventEnvelope = Extract<Envelope, { t: "event" }>;
