/**
 * The agent is the guest's PID 1: if it ends, the guest kernel panics and the container is
 * lost without a word. So no error may end it. An unexpected one (an unhandled rejection,
 * an exception thrown from a callback) is reported instead: to the host as a `log` event,
 * which the stand-in writes to the runtime's log, and on the guest console.
 */
import { errorMessage } from "../errors.ts";
import type { EventEnvelope } from "../protocol/messages.ts";

type LogEvent = Extract<EventEnvelope, { event: "log" }>;
export type SendEvent = (ev: LogEvent) => Promise<void>;

export class FaultReporter {
  /** Set once the host channel exists; until then reports go to the console only. */
  send?: SendEvent;

  /** Installs the process-wide handlers that keep the agent alive. */
  install(): void {
    process.on("uncaughtException", (err) => this.report("error", `uncaught error: ${errorMessage(err)}`));
    process.on("unhandledRejection", (err) =>
      this.report("error", `unhandled rejection: ${errorMessage(err)}`),
    );
  }

  report(level: LogEvent["level"], message: string): void {
    console.error(`cc-agent: ${level}: ${message}`);
    this.send?.({ t: "event", event: "log", level, message }).catch(() => {});
  }
}
