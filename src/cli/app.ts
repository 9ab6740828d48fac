import { join } from "node:path";
import { NAME } from "../config/build.ts";
import { errorMessage, RuntimeError } from "../errors.ts";
import type { RuntimeContext } from "../lifecycle/context.ts";
import { type LogFormat, Logger, type LoggerOptions } from "../log/logger.ts";
import { StateStore } from "../state/store.ts";
import { realPath } from "../sys/mounts.ts";
import { type Privilege, privilege } from "../sys/privilege.ts";

export const DEFAULT_ROOT = "/run/opencontainer/containers";

/**
 * --root when none is given, by runc's rule: a user's root, and that of root in a user
 * namespace other than root itself (rootless podman runs its runtime so, with USER set to
 * the user's name), is under XDG_RUNTIME_DIR (a directory only the user can write); else
 * DEFAULT_ROOT, which a user cannot create: an error naming it, so that `--root` is given.
 */
export function defaultRoot(env = process.env, p: Privilege = privilege()): string {
  const honour = p === "user" || (p === "namespace-root" && env.USER !== "root");
  if (honour && env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, NAME);
  return DEFAULT_ROOT;
}

export interface GlobalOptions {
  root: string;
  log?: string;
  logFormat: LogFormat;
  globalLog?: string;
  debug: boolean;
  systemdCgroup?: boolean;
  rootless?: string;
  criu?: string;
}

/** What every subcommand gets: the parsed global options, the logger and the state store. */
export class App implements RuntimeContext {
  readonly logger: Logger;
  /** Handed to stand-ins so that they log where this call does. */
  readonly loggerOptions: LoggerOptions;
  readonly store: StateStore;
  readonly opts: GlobalOptions;
  readonly root: string;
  readonly systemdCgroup: boolean;

  constructor(given: GlobalOptions) {
    // One spelling of the root everywhere: absolute and symlink-free, as mountinfo shows
    // paths (a relative or symlinked --root must not hide the mounts below it).
    const opts = { ...given, root: realPath(given.root) };
    this.opts = opts;
    this.root = opts.root;
    this.systemdCgroup = opts.systemdCgroup === true;
    if (opts.logFormat !== "text" && opts.logFormat !== "json") {
      throw new RuntimeError(`--log-format: expected text or json, got ${JSON.stringify(opts.logFormat)}`);
    }
    const globalLogs = [join(opts.root, `${NAME}.log`)];
    if (opts.globalLog) globalLogs.push(opts.globalLog);
    this.loggerOptions = { logFile: opts.log, logFormat: opts.logFormat, globalLogs, debug: opts.debug };
    this.logger = new Logger(this.loggerOptions);
    this.store = new StateStore(opts.root);
  }

  /** Logs options that are accepted for compatibility but have no effect on a VM runtime. */
  noteIgnored(name: string, value: unknown): void {
    if (value !== undefined && value !== false)
      this.logger.debug(`option ${name} accepted, has no effect here`);
  }
}

/** Prints to stdout, the one place command output goes (never log noise). */
export function print(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}

/**
 * Runs a command body and turns any failure into: one line on stderr, an error line in
 * the logs, and the error's exit code.
 */
export async function runAction(
  app: App,
  command: string,
  body: () => Promise<number | undefined> | number | undefined,
  failureExit?: number,
) {
  try {
    app.logger.debug(`${command}: ${withoutEnvValues(process.argv.slice(2)).join(" ")}`);
    const code = await body();
    process.exitCode = code ?? 0;
  } catch (err) {
    const msg = errorMessage(err);
    if (!(err instanceof RuntimeError)) app.logger.debug(`${command}: ${(err as Error)?.stack ?? msg}`);
    app.logger.error(msg);
    process.stderr.write(`${NAME}: ${msg}\n`);
    process.exitCode = failureExit ?? (err instanceof RuntimeError ? err.exitCode : 1);
  }
}

const ENV_FLAG = /^(?:-e|--?env)$/;
const ENV_FLAG_WITH_VALUE = /^(-e=?|--?env=)([^=]*)=.*$/s;

/**
 * The command line as it may be logged: `exec -e K=V` carries secrets (tokens, passwords),
 * so each variable keeps its name and loses its value, in every spelling commander and the
 * Go-style prepass accept (`-e K=V`, `-eK=V`, `--env K=V`, `--env=K=V`, `-env K=V`).
 */
export function withoutEnvValues(argv: string[]): string[] {
  return argv.map((token, i) => {
    if (i > 0 && ENV_FLAG.test(argv[i - 1] as string)) return token.replace(/=.*$/s, "=<redacted>");
    return token.replace(ENV_FLAG_WITH_VALUE, "$1$2=<redacted>");
  });
}
