/**
 * What the lifecycle library needs from whoever calls it: the state store, a logger (and
 * its options, handed to stand-ins so they log where their caller does) and the root. The
 * CLI's App is one such caller; a shim or a CRI-facing process would be another. The library
 * knows no command line: commands translate their flags into the request types it defines.
 *
 *   cli, commands  ->  lifecycle  ->  standin, hypervisor, config, state, protocol  ->  sys
 */
import type { Logger, LoggerOptions } from "../log/logger.ts";
import type { StateStore } from "../state/store.ts";

export interface RuntimeContext {
  readonly store: StateStore;
  readonly logger: Logger;
  readonly loggerOptions: LoggerOptions;
  /** The state root (--root), absolute and symlink-free. */
  readonly root: string;
  /** --systemd-cgroup: cgroupsPath is systemd's `slice:prefix:name`. */
  readonly systemdCgroup?: boolean;
  /** Logs (debug) that an option was accepted for compatibility and has no effect. */
  noteIgnored(name: string, value: unknown): void;
}
