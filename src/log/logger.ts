import { appendFileSync, chmodSync, mkdirSync, statSync } from "node:fs";
import { dirname } from "node:path";

export type LogLevel = "debug" | "info" | "warning" | "error";
export type LogFormat = "text" | "json";

export interface LoggerOptions {
  /** `--log FILE`: what containerd reads the last error line from. */
  logFile?: string;
  logFormat: LogFormat;
  /** Always-appended plain-text logs with the pid on each line (the seed's global log). */
  globalLogs: string[];
  debug: boolean;
}

/**
 * Writes each message as one append(2) per line, so concurrent runtime processes
 * appending to the same file never interleave within a line.
 * Nothing goes to stdout: on a non-tty `create`, stdout is the container's.
 */
export class Logger {
  constructor(private readonly opts: LoggerOptions) {}

  get debugEnabled(): boolean {
    return this.opts.debug;
  }

  debug(msg: string): void {
    if (this.opts.debug) this.write("debug", msg);
  }
  /**
   * A debug line marking where a container's start has got to (`<id>: phase <name>`): the
   * bench reads the time between them (bench/lib/phases.ts).
   */
  phase(id: string, name: string): void {
    this.debug(`${id}: phase ${name}`);
  }
  info(msg: string): void {
    this.write("info", msg);
  }
  warn(msg: string): void {
    this.write("warning", msg);
  }
  error(msg: string): void {
    this.write("error", msg);
  }

  private write(level: LogLevel, msg: string): void {
    const time = new Date().toISOString();
    if (this.opts.logFile) {
      const line =
        this.opts.logFormat === "json"
          ? JSON.stringify({ level, msg, time })
          : `time="${time}" level=${level} msg=${JSON.stringify(msg)}`;
      appendLine(this.opts.logFile, line);
    }
    const plain = `${time} [${process.pid}] ${level}: ${msg}`;
    for (const file of this.opts.globalLogs) appendLine(file, plain);
  }
}

/** Logs may name what a container runs: readable by their owner only. */
const LOG_MODE = 0o600;
/** Files this process has already made private (a log made by an older version was 0644). */
const madePrivate = new Set<string>();

function appendLine(file: string, line: string): void {
  try {
    append(file, line);
  } catch (err) {
    // The log's directory may not exist yet (a fresh --root): create it once and retry.
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") return;
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o711 });
      append(file, line);
    } catch {
      // Logging must never turn a working call into a failing one.
    }
  }
}

function append(file: string, line: string): void {
  appendFileSync(file, `${line}\n`, { mode: LOG_MODE });
  if (madePrivate.has(file)) return;
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, LOG_MODE);
  madePrivate.add(file);
}

/** A logger that drops everything: for library code exercised in unit tests. */
export const silentLogger = new Logger({ logFormat: "text", globalLogs: [], debug: false });
