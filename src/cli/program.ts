import { Command, CommanderError } from "commander";
import { commands } from "../commands/index.ts";
import { NAME } from "../config/build.ts";
import { errorMessage } from "../errors.ts";
import { App, defaultRoot, type GlobalOptions } from "./app.ts";
import { goStyleArgv } from "./prepass.ts";
import { versionText } from "./version-text.ts";

/** The subcommand table and the global options (runc's, plus the seed's --global-log). */
export function buildProgram(): { program: Command; app: () => App } {
  let app: App | undefined;
  const program = new Command(NAME)
    .description("OCI runtime that runs each container inside its own lightweight virtual machine")
    .usage("[global options] command [command options] [arguments...]")
    .option("--root <dir>", "root directory for storage of container state", defaultRoot())
    .option("--log <file>", "log file for the runtime's messages")
    .option("--log-format <format>", "log format: text or json", "text")
    .option("--global-log <file>", "also append plain-text logs (with pids) to this file")
    .option("--debug", "enable debug output in the logs", false)
    .option("--systemd-cgroup", "cgroupsPath is systemd's slice:prefix:name (systemd must be running)")
    .option("--rootless <value>", "accepted for runc compatibility: auto, true or false")
    .option("--criu <path>", "accepted for runc compatibility (checkpoints are VM snapshots)")
    .option("-v, --version", "print the version")
    .helpCommand("help [command]", "show help for a command")
    .enablePositionalOptions()
    .showSuggestionAfterError(false)
    .exitOverride()
    .argument("[command]")
    .action((cmd: string | undefined, opts: { version?: boolean }) => {
      if (opts.version) {
        process.stdout.write(versionText());
        return;
      }
      if (cmd) throw new CommanderError(1, "unknown-command", `unknown command "${cmd}"`);
      program.outputHelp();
    });

  const getApp = (): App => {
    if (!app) {
      const o = program.opts() as GlobalOptions;
      app = new App(o);
      app.noteIgnored("--rootless", o.rootless);
      app.noteIgnored("--criu", o.criu);
    }
    return app;
  };
  for (const make of commands) program.addCommand(make(getApp).exitOverride());
  return { program, app: getApp };
}

/** Entry point of the CLI role; returns the exit code. */
export async function runCli(argv: string[]): Promise<number> {
  const { program, app } = buildProgram();
  try {
    await program.parseAsync(goStyleArgv(program, argv), { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0 || err.code === "commander.helpDisplayed" || err.code === "commander.help")
        return 0;
      // Commander already printed its message for parse errors; log it for containerd too.
      const msg = err.message.replace(/^error: /, "");
      if (err.code === "unknown-command") process.stderr.write(`${NAME}: ${msg}\n`);
      safeLog(app, msg);
      return 1;
    }
    const msg = errorMessage(err);
    process.stderr.write(`${NAME}: ${msg}\n`);
    safeLog(app, msg);
    return 1;
  }
}

function safeLog(app: () => App, msg: string): void {
  try {
    app().logger.error(msg);
  } catch {
    // The global options themselves may be what is wrong.
  }
}
