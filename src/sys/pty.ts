/**
 * Pseudo-terminals: open a master/slave pair, read and set the window size, and put a
 * terminal into raw mode. All calls go through libc (src/sys/libc.ts).
 *
 * Used by the standin for `--console-socket` (the pty's master goes to the caller, the VM
 * relay talks to the slave) and by the agent in the guest.
 */
import { cstr, libc, O_CLOEXEC, O_NOCTTY, O_RDWR, SysError, sysError } from "./libc.ts";

/** ioctl requests of <asm-generic/ioctls.h> (x86_64). */
const TIOCGWINSZ = 0x5413;
const TIOCSWINSZ = 0x5414;
/** tcsetattr(3) "when": apply now. */
const TCSANOW = 0;
/**
 * glibc's struct termios is 60 bytes on x86_64 (4 flag words, c_line, 32 c_cc, padding,
 * 2 speeds). The buffer is larger so that a layout change cannot overrun it; its content is
 * only ever handled by libc (tcgetattr -> cfmakeraw -> tcsetattr).
 */
const TERMIOS_SIZE = 128;

export interface Pty {
  /** Master side, O_RDWR|O_NOCTTY|O_CLOEXEC. */
  master: number;
  /** Slave side, O_RDWR|O_NOCTTY (not close-on-exec, so that it can be handed down). */
  slave: number;
  /** Path of the slave, e.g. /dev/pts/3. */
  slaveName: string;
}

/**
 * Opens a new pty pair. O_NOCTTY on both ends: opening them never makes the pty the
 * controlling terminal of our process, even when it is a session leader without one.
 * The caller owns both fds and closes them.
 */
export function openPty(): Pty {
  const c = libc();
  const master = c.posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) throw sysError("posix_openpt");
  try {
    if (c.grantpt(master) !== 0) throw sysError("grantpt");
    if (c.unlockpt(master) !== 0) throw sysError("unlockpt");
    const name = Buffer.alloc(256);
    // ptsname_r returns the error number itself (and does not necessarily set errno).
    const rc = c.ptsname_r(master, name, name.length);
    if (rc !== 0) throw new SysError("ptsname_r", rc);
    const slaveName = name.toString("utf8", 0, name.indexOf(0));
    const slave = c.open(cstr(slaveName), O_RDWR | O_NOCTTY, 0);
    if (slave < 0) throw sysError("open", slaveName);
    return { master, slave, slaveName };
  } catch (err) {
    c.close(master);
    throw err;
  }
}

export interface Winsize {
  rows: number;
  cols: number;
}

/** The window size of a terminal fd; undefined when fd is not a terminal (ENOTTY) or closed. */
export function getWinsize(fd: number): Winsize | undefined {
  // struct winsize { unsigned short ws_row, ws_col, ws_xpixel, ws_ypixel; }
  const ws = Buffer.alloc(8);
  if (libc().ioctl(fd, TIOCGWINSZ, ws) !== 0) return undefined;
  return { rows: ws.readUInt16LE(0), cols: ws.readUInt16LE(2) };
}

/**
 * Sets the window size of a terminal (either side of a pty). The kernel sends SIGWINCH to
 * the foreground process group of the pty when the size changes.
 */
export function setWinsize(fd: number, rows: number, cols: number): void {
  for (const [what, v] of [
    ["rows", rows],
    ["cols", cols],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`setWinsize: bad ${what} ${v}`);
  }
  const ws = Buffer.alloc(8);
  ws.writeUInt16LE(rows, 0);
  ws.writeUInt16LE(cols, 2);
  if (libc().ioctl(fd, TIOCSWINSZ, ws) !== 0) throw sysError("ioctl(TIOCSWINSZ)", `fd ${fd}`);
}

/**
 * Puts a terminal in raw mode, exactly as cfmakeraw(3) does: no echo, no line editing, no
 * signal characters, no CR/NL translation on input or output, 8-bit characters, reads
 * return as soon as one byte is there. Used on the host end of a relay pty so that bytes
 * pass through unchanged (the terminal processing happens once, in the container's pty).
 */
export function setRaw(fd: number): () => void {
  const c = libc();
  const t = Buffer.alloc(TERMIOS_SIZE);
  if (c.tcgetattr(fd, t) !== 0) throw sysError("tcgetattr", `fd ${fd}`);
  const saved = Buffer.from(t);
  c.cfmakeraw(t);
  if (c.tcsetattr(fd, TCSANOW, t) !== 0) throw sysError("tcsetattr", `fd ${fd}`);
  /** Puts the terminal back as it was (for a person's terminal, at exit). */
  return () => {
    c.tcsetattr(fd, TCSANOW, saved);
  };
}

/** Local-mode flags (c_lflag) of a terminal, for tests and diagnostics. */
export function termiosFlags(fd: number): { iflag: number; oflag: number; cflag: number; lflag: number } {
  const t = Buffer.alloc(TERMIOS_SIZE);
  if (libc().tcgetattr(fd, t) !== 0) throw sysError("tcgetattr", `fd ${fd}`);
  return {
    iflag: t.readUInt32LE(0),
    oflag: t.readUInt32LE(4),
    cflag: t.readUInt32LE(8),
    lflag: t.readUInt32LE(12),
  };
}
