/**
 * What a stand-in passes on to its process in the guest: the signals it receives (SIGKILL
 * and SIGSTOP cannot be caught; a killed stand-in takes its VM or exec down instead), and
 * terminal size changes, seen on SIGWINCH or by polling (podman resizes the pty master
 * without telling the runtime; containerd sends `kill ID 28` after resizing).
 */
import type { Hub } from "./hub.ts";
import type { HostStdio } from "./stdio.ts";

export const FORWARDED_SIGNALS: [NodeJS.Signals, number][] = [
  ["SIGTERM", 15],
  ["SIGINT", 2],
  ["SIGHUP", 1],
  ["SIGQUIT", 3],
  ["SIGUSR1", 10],
  ["SIGUSR2", 12],
];

const WINSIZE_POLL_MS = 1_000;
const SIGWINCH = 28;

export function forwardSignals(send: (signal: number) => void): void {
  for (const [name, num] of FORWARDED_SIGNALS) process.on(name, () => send(num));
}

export type Winsize = { rows: number; cols: number };

/**
 * Calls `send` whenever the terminal's size differs from the last one sent; returns the
 * check itself, for a caller that learns of a resize another way. The guest kernel then
 * signals SIGWINCH to the process, as a local terminal would.
 */
export function watchWinsize(io: HostStdio, send: (ws: Winsize) => Promise<unknown>): () => Promise<void> {
  let last = JSON.stringify(io.winsize());
  const check = async () => {
    const ws = io.winsize();
    if (ws && JSON.stringify(ws) !== last) {
      last = JSON.stringify(ws);
      await send(ws).catch(() => {});
    }
  };
  process.on("SIGWINCH", () => void check());
  setInterval(() => void check(), WINSIZE_POLL_MS);
  return check;
}

/**
 * A container's terminal: its size changes reach the guest (`resize`, watchWinsize), and a
 * WINCH for the container's own process that comes through its hub passes the new size on
 * first (containerd resizes the pty master, then sends WINCH).
 */
export function relayWinsize(
  hub: Hub,
  io: HostStdio,
  id: string,
  resize: (ws: Winsize) => Promise<unknown>,
): void {
  const check = watchWinsize(io, resize);
  hub.beforeForward = async (op, args) => {
    const req = args as { id?: string; signal?: number; execId?: string };
    if (op === "signal" && req.signal === SIGWINCH && !req.execId && req.id === id) await check();
  };
}
