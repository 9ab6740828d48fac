/**
 * Wiring a guest process's stdio to the host's streams: pipes (stdin/stdout/stderr) or a
 * terminal (the pty master crun hands over on its console socket, one `tty` stream).
 */
import type { Subprocess } from "bun";
import type { Channel } from "../protocol/channel.ts";
import type { Stdio } from "../protocol/messages.ts";
import { receiveFdServer } from "../sys/fdpass.ts";
import { fdReader, fdWriter } from "../sys/fdstream.ts";
import { libc, O_CLOEXEC, ptr } from "../sys/libc.ts";
import { openPty, setWinsize } from "../sys/pty.ts";
import { crunDone, type StdioSpec } from "./crun.ts";

export interface GuestProcess {
  pid: number;
  execId?: string;
  /** Settles when all of the process's output has been sent to the host. */
  drained: Promise<unknown>;
  resize?: (rows: number, cols: number) => void;
}

const CONSOLE_SOCKET_WAIT_MS = 30_000;

/** A kernel pipe, both ends close-on-exec (a child gets one as its stdio, dup2-ed). */
export function makePipe(): [number, number] {
  const fds = new Int32Array(2);
  if (libc().pipe2(ptr(fds), O_CLOEXEC) !== 0) throw new Error("pipe2 failed");
  return [fds[0] as number, fds[1] as number];
}

async function pump(channel: Channel, source: AsyncIterable<Uint8Array>, stream: number): Promise<void> {
  try {
    for await (const chunk of source) await channel.sendData(stream, chunk);
  } finally {
    await channel.sendEof(stream).catch(() => {});
  }
}

/**
 * Relays a process's output pipe (our read end). An EOF from the host on an output stream
 * means its reader went away (EPIPE on the host, `| head`): the pipe is closed here, so that
 * the process's next write fails as a write to a closed pipe does, instead of running on.
 */
function pumpPipe(channel: Channel, readFd: number, stream: number): Promise<void> {
  const reader = fdReader(readFd);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    libc().close(readFd);
  };
  channel.onStream(
    stream,
    () => undefined,
    () => void reader.cancel().then(close, close),
  );
  return pump(channel, reader, stream).finally(() => {
    channel.dropStream(stream);
    close();
  });
}

export async function wirePipes(
  channel: Channel,
  stdio: Stdio,
  spawn: (spec: [StdioSpec, StdioSpec, StdioSpec]) => Subprocess<StdioSpec, StdioSpec, StdioSpec>,
  /** Waits for the spawned program (crun create/exec, criu restore); throws its failure. */
  done: (proc: Subprocess) => Promise<void>,
): Promise<GuestProcess> {
  // stdin is our own pipe: Bun closes a Subprocess's stdin pipe when crun exits, but the
  // container process (crun's child) keeps reading it long after.
  // Output too: real pipes (Bun's "pipe" is a socketpair), as runc gives a process, and
  // what CRIU can hand to a restored process in their place (agent/checkpoint.ts).
  const stdinPipe = stdio.stdin ? makePipe() : undefined;
  const stdoutPipe = stdio.stdout ? makePipe() : undefined;
  const stderrPipe = stdio.stderr ? makePipe() : undefined;
  let proc: Subprocess<StdioSpec, StdioSpec, StdioSpec>;
  try {
    proc = spawn([
      stdinPipe ? stdinPipe[0] : "ignore",
      stdoutPipe ? stdoutPipe[1] : "ignore",
      stderrPipe ? stderrPipe[1] : "ignore",
    ]);
  } finally {
    // The child has its copies: ours of its ends go.
    if (stdinPipe) libc().close(stdinPipe[0]);
    if (stdoutPipe) libc().close(stdoutPipe[1]);
    if (stderrPipe) libc().close(stderrPipe[1]);
  }
  if (stdinPipe && stdio.stdin) {
    const sink = fdWriter(stdinPipe[1]);
    // Credited back once written into the pipe: a process that does not read (yet) stalls
    // only its own stdin, within the stream's window.
    channel.onStream(
      stdio.stdin,
      (data) => sink.write(data).catch(() => {}),
      () => sink.close(),
    );
  }
  const pumps: Promise<void>[] = [];
  if (stdoutPipe && stdio.stdout) pumps.push(pumpPipe(channel, stdoutPipe[0], stdio.stdout));
  if (stderrPipe && stdio.stderr) pumps.push(pumpPipe(channel, stderrPipe[0], stdio.stderr));
  try {
    await done(proc);
  } catch (err) {
    if (stdio.stdin) channel.dropStream(stdio.stdin);
    throw err;
  }
  return { pid: 0, drained: Promise.allSettled(pumps) };
}

export async function wireTerminal(
  channel: Channel,
  stdio: Stdio,
  socketPath: string,
  size: { rows: number; cols: number } | undefined,
  log: string,
  what: "create" | "exec",
  spawn: (socketPath: string) => Subprocess<StdioSpec, StdioSpec, StdioSpec>,
): Promise<GuestProcess> {
  if (!stdio.tty) throw new Error("a terminal process needs a tty stream");
  const server = receiveFdServer(socketPath);
  let master: number;
  try {
    const proc = spawn(socketPath);
    const received = server.accept(CONSOLE_SOCKET_WAIT_MS);
    // crun sends the pty master during create, then exits; a failing crun never sends it.
    await crunDone(proc, log, what);
    master = (await received).fd;
  } finally {
    server.close();
  }
  return relayTerminal(channel, stdio.tty, master, size);
}

/**
 * A restored terminal process (agent/checkpoint.ts): a new pty, its slave given to
 * `spawn` (criu restore, which hands it to the tree in the dumped one's place), its master
 * relayed as the `tty` stream.
 */
export async function wireNewTerminal(
  channel: Channel,
  stdio: Stdio,
  size: { rows: number; cols: number } | undefined,
  spawn: (slave: number, slaveName: string) => Subprocess<StdioSpec, StdioSpec, StdioSpec>,
  done: (proc: Subprocess) => Promise<void>,
): Promise<GuestProcess> {
  if (!stdio.tty) throw new Error("a terminal process needs a tty stream");
  const pty = openPty();
  try {
    if (size) setWinsize(pty.master, size.rows, size.cols);
    await done(spawn(pty.slave, pty.slaveName));
  } catch (err) {
    libc().close(pty.master);
    throw err;
  } finally {
    // The restored tree has its copies.
    libc().close(pty.slave);
  }
  return relayTerminal(channel, stdio.tty, pty.master, undefined);
}

function relayTerminal(
  channel: Channel,
  tty: number,
  master: number,
  size: { rows: number; cols: number } | undefined,
): GuestProcess {
  if (size) setWinsize(master, size.rows, size.cols);
  const writer = fdWriter(master);
  channel.onStream(tty, (data) => writer.write(data));
  return {
    pid: 0,
    drained: pump(channel, fdReader(master), tty),
    resize: (rows, cols) => setWinsize(master, rows, cols),
  };
}
