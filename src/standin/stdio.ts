/**
 * The host end of a process's stdio, held by its stand-in: either the stand-in's own fds
 * 0/1/2 (pipes from the manager), relayed as three streams, or a terminal: a host pty
 * whose master goes to the manager's --console-socket (or an existing --console slave),
 * relayed as one `tty` stream.
 */
import { closeSync, constants as fsc, openSync } from "node:fs";
import type { Channel } from "../protocol/channel.ts";
import type { Stdio } from "../protocol/messages.ts";
import { sendFd } from "../sys/fdpass.ts";
import { fdReader, fdWriter } from "../sys/fdstream.ts";
import { setNonBlocking } from "../sys/libc.ts";
import { getWinsize, openPty, setRaw } from "../sys/pty.ts";

/**
 * Stream ids of the stand-in's own process (hub clients get theirs mapped above 100); layer:
 * the writable layer's archive at the init's exit (standin/layer.ts).
 */
export const STREAMS = { stdin: 1, stdout: 2, stderr: 3, tty: 4, layer: 5 } as const;

export interface HostStdio {
  stdio: Stdio;
  consoleSize?: { rows: number; cols: number };
  /** Begins relaying input (after the process exists in the guest). */
  startInput(): void;
  /** Settles when all output has been written out on the host. */
  drained: Promise<unknown>;
  winsize(): { rows: number; cols: number } | undefined;
}

async function relayIn(channel: Channel, fd: number, stream: number, eof: boolean): Promise<void> {
  try {
    for await (const chunk of fdReader(fd)) await channel.sendData(stream, chunk);
  } catch {
    // The input went away (closed pipe, hung-up terminal): that is its end.
  }
  if (eof) await channel.sendEof(stream).catch(() => {});
}

/**
 * Writes a stream out to fd until its end. A write error (EPIPE: the reader closed early,
 * `| head`) closes the stream as SIGPIPE would: the guest is told (an EOF from our side),
 * closes the process's pipe, and what is still in flight is dropped.
 */
function relayOut(channel: Channel, stream: number, fd: number): Promise<void> {
  const out = fdWriter(fd);
  return new Promise((resolve) => {
    channel.onStream(
      stream,
      (data) =>
        out.write(data).catch(() => {
          channel.dropStream(stream);
          void channel.sendEof(stream).catch(() => {});
          resolve();
        }),
      () => resolve(),
    );
  });
}

/**
 * The relays make fds 0-2 non-blocking, and that flag lives in the open file, shared with
 * whoever else holds it (a shell, when a person runs `run`): it is cleared at exit.
 */
export function restoreBlockingAtExit(): void {
  process.on("exit", () => {
    for (const fd of [0, 1, 2]) {
      try {
        setNonBlocking(fd, false);
      } catch {
        // Closed or not ours any more.
      }
    }
  });
}

export function pipeStdio(channel: Channel): HostStdio {
  const drained = Promise.all([relayOut(channel, STREAMS.stdout, 1), relayOut(channel, STREAMS.stderr, 2)]);
  return {
    stdio: { stdin: STREAMS.stdin, stdout: STREAMS.stdout, stderr: STREAMS.stderr },
    startInput: () => void relayIn(channel, 0, STREAMS.stdin, true),
    drained,
    winsize: () => undefined,
  };
}

export function terminalStdio(channel: Channel, t: { consoleSocket?: string; console?: string }): HostStdio {
  let fd: number;
  if (t.consoleSocket) {
    const pty = openPty();
    try {
      sendFd(t.consoleSocket, pty.master, pty.slaveName);
    } finally {
      closeSync(pty.master);
    }
    fd = pty.slave;
  } else if (t.console) {
    fd = openSync(t.console, fsc.O_RDWR | fsc.O_NOCTTY);
  } else {
    throw new Error("a terminal needs --console-socket or --console");
  }
  // The line discipline that matters is the guest's: the host side passes bytes through.
  const restore = setRaw(fd);
  // A person's terminal (--console, or the caller's own) is given back as it was.
  if (t.console) process.on("exit", restore);
  const winsize = () => getWinsize(fd);
  return {
    stdio: { tty: STREAMS.tty },
    consoleSize: winsize(),
    startInput: () => void relayIn(channel, fd, STREAMS.tty, false),
    drained: relayOut(channel, STREAMS.tty, fd),
    winsize,
  };
}
