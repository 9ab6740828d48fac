/**
 * An interactive client behind a real terminal: util-linux `script` gives the command a pty
 * (as a person's terminal would), and the test types into it and reads the screen, like
 * expect. Used for `docker run -ti` and `docker exec -ti`.
 */
import type { Subprocess } from "bun";

const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`);

export class PtySession {
  private child: Subprocess<"pipe", "pipe", "pipe">;
  private text = "";
  private readonly started = performance.now();
  readonly argv: string[];
  /** Everything typed, for failure messages. */
  readonly typed: string[] = [];

  constructor(argv: string[], env: Record<string, string | undefined>) {
    this.argv = argv;
    // A sane terminal size first: the container's tty is resized to it.
    const line = `stty cols 120 rows 40 2>/dev/null; exec ${argv.map(quote).join(" ")}`;
    this.child = Bun.spawn(["script", "-q", "-e", "-f", "-c", line, "/dev/null"], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
      env: { ...env, TERM: "xterm" } as Record<string, string>,
    });
    void this.pump(this.child.stdout);
    void this.pump(this.child.stderr);
  }

  private async pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const dec = new TextDecoder();
    for await (const chunk of stream) this.text += dec.decode(chunk, { stream: true });
  }

  /** The screen so far, escape sequences and carriage returns removed. */
  get output(): string {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escape sequences
    return this.text.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]|\r/g, "");
  }

  send(keys: string): void {
    this.typed.push(keys);
    this.child.stdin.write(keys);
    this.child.stdin.flush();
  }

  /** Waits until the output (from `from` on) matches; returns the match. */
  async expect(re: RegExp, timeoutMs: number, from = 0): Promise<RegExpMatchArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = this.output.slice(from).match(re);
      if (m) return m;
      if (Date.now() > end || this.child.exitCode !== null) {
        throw new Error(`no ${re} on the terminal after ${timeoutMs} ms:\n${this.transcript()}`);
      }
      await Bun.sleep(100);
    }
  }

  /** Waits for the client to exit (SIGKILL after the limit); its exit status, -1 on time-out. */
  async exit(timeoutMs: number): Promise<number> {
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    const code = await this.child.exited;
    clearTimeout(timer);
    this.child.stdin.end();
    return this.child.signalCode ? -1 : code;
  }

  kill(): void {
    this.child.kill("SIGKILL");
  }

  get ms(): number {
    return Math.round(performance.now() - this.started);
  }

  transcript(): string {
    return [
      `$ ${this.argv.map(quote).join(" ")}   (through script(1), a pty)`,
      `typed: ${JSON.stringify(this.typed)}`,
      `screen: ${JSON.stringify(this.output)}`,
    ].join("\n");
  }
}
