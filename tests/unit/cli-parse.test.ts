/**
 * Every argv line of ../shared/reference/clients.md (what containerd-shim-runc-v2, dockerd
 * and podman/conmon really send), each parsed as sent and again spelled Go-style
 * (`-root X`, `-flag=value`), which runc's flag parser accepts too.
 */
import { describe, expect, test } from "bun:test";
import { parse } from "../lib/cli.ts";

const G = ["--root", "/run/containerd/runc/default", "--log", "/b/log.json", "--log-format", "json"];

/** Go-style spelling of a GNU-style argv: --name -> -name, and `--name value` -> `-name=value` every other flag. */
function goStyle(argv: string[]): string[] {
  let flip = false;
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const t = argv[i] as string;
    if (t.startsWith("--") && t.length > 2) {
      flip = !flip;
      const next = argv[i + 1];
      const valued = next !== undefined && !next.startsWith("-") && VALUED.has(t);
      if (valued && flip) {
        out.push(`-${t.slice(2)}=${next}`);
        i++;
      } else out.push(`-${t.slice(2)}`);
    } else out.push(t);
  }
  return out;
}
const VALUED = new Set([
  "--root",
  "--log",
  "--log-format",
  "--bundle",
  "--pid-file",
  "--console-socket",
  "--process",
  "--format",
  "--resources",
  "--image-path",
  "--work-path",
]);

interface Case {
  argv: string[];
  command: string;
  args: unknown[];
  opts: Record<string, unknown>;
  globals?: Record<string, unknown>;
}

const shimGlobals = { root: "/run/containerd/runc/default", log: "/b/log.json", logFormat: "json" };

const cases: Case[] = [
  {
    argv: [...G, "create", "--bundle", "/b", "--pid-file", "/b/init.pid", "c1"],
    command: "create",
    args: ["c1"],
    opts: { bundle: "/b", pidFile: "/b/init.pid" },
    globals: shimGlobals,
  },
  {
    argv: [
      ...G,
      "--systemd-cgroup",
      "create",
      "--bundle",
      "/b",
      "--pid-file",
      "/b/init.pid",
      "--console-socket",
      "/tmp/pty1/pty.sock",
      "c1",
    ],
    command: "create",
    args: ["c1"],
    opts: { bundle: "/b", pidFile: "/b/init.pid", consoleSocket: "/tmp/pty1/pty.sock" },
    globals: { ...shimGlobals, systemdCgroup: true },
  },
  { argv: [...G, "start", "c1"], command: "start", args: ["c1"], opts: {}, globals: shimGlobals },
  {
    argv: [...G, "exec", "--process", "/tmp/runc-process1", "--detach", "--pid-file", "/b/e1.pid", "c1"],
    command: "exec",
    args: ["c1", []],
    opts: { process: "/tmp/runc-process1", detach: true, pidFile: "/b/e1.pid" },
  },
  {
    argv: [
      ...G,
      "exec",
      "--process",
      "/tmp/p",
      "--console-socket",
      "/tmp/s.sock",
      "--detach",
      "--pid-file",
      "/b/e.pid",
      "c1",
    ],
    command: "exec",
    args: ["c1", []],
    opts: { process: "/tmp/p", consoleSocket: "/tmp/s.sock", detach: true, pidFile: "/b/e.pid" },
  },
  { argv: [...G, "kill", "c1", "15"], command: "kill", args: ["c1", "15"], opts: {} },
  { argv: [...G, "kill", "--all", "c1", "9"], command: "kill", args: ["c1", "9"], opts: { all: true } },
  { argv: [...G, "kill", "c1", "28"], command: "kill", args: ["c1", "28"], opts: {} },
  { argv: [...G, "ps", "--format", "json", "c1"], command: "ps", args: ["c1", []], opts: { format: "json" } },
  { argv: [...G, "pause", "c1"], command: "pause", args: ["c1"], opts: {} },
  { argv: [...G, "resume", "c1"], command: "resume", args: ["c1"], opts: {} },
  {
    argv: [...G, "update", "--resources", "-", "c1"],
    command: "update",
    args: ["c1"],
    opts: { resources: "-" },
  },
  {
    argv: [...G, "checkpoint", "--image-path", "/p", "--work-path", "/w", "--leave-running", "c1"],
    command: "checkpoint",
    args: ["c1"],
    opts: { imagePath: "/p", workPath: "/w", leaveRunning: true },
  },
  { argv: [...G, "delete", "c1"], command: "delete", args: ["c1"], opts: {} },
  { argv: [...G, "delete", "--force", "c1"], command: "delete", args: ["c1"], opts: { force: true } },
  // podman/conmon: no global flags; exec adds --tty beside --console-socket; delete is always --force.
  {
    argv: ["create", "--bundle", "/b", "--pid-file", "/b/pidfile", "c2"],
    command: "create",
    args: ["c2"],
    opts: { bundle: "/b", pidFile: "/b/pidfile" },
    globals: { root: "/run/opencontainer/containers", logFormat: "text" },
  },
  {
    argv: [
      "exec",
      "--pid-file",
      "/x/p",
      "--process",
      "/x/proc.json",
      "--tty",
      "--console-socket",
      "/x/s",
      "--detach",
      "c2",
    ],
    command: "exec",
    args: ["c2", []],
    opts: { pidFile: "/x/p", process: "/x/proc.json", tty: true, consoleSocket: "/x/s", detach: true },
  },
  { argv: ["delete", "--force", "c2"], command: "delete", args: ["c2"], opts: { force: true } },
];

function check(got: Awaited<ReturnType<typeof parse>>, c: Case) {
  expect(got.command).toBe(c.command);
  expect(got.args).toEqual(c.args);
  for (const [k, v] of Object.entries(c.opts)) expect(got.opts[k]).toEqual(v);
  for (const [k, v] of Object.entries(c.globals ?? {})) expect(got.globals[k]).toEqual(v);
}

describe("argv from clients.md", () => {
  for (const c of cases) {
    test(c.argv.join(" "), async () => check(await parse(c.argv), c));
    test(`Go-style: ${goStyle(c.argv).join(" ")}`, async () => check(await parse(goStyle(c.argv)), c));
  }
});

describe("Go-style flag spellings", () => {
  test("--root X, --root=X, -root X, -root=X are one thing", async () => {
    for (const spelling of [["--root", "/r"], ["--root=/r"], ["-root", "/r"], ["-root=/r"]]) {
      const got = await parse([...spelling, "state", "x"]);
      expect(got.globals.root).toBe("/r");
    }
  });
  test("boolean --debug=false and --debug=true", async () => {
    expect((await parse(["--debug=false", "state", "x"])).globals.debug).toBe(false);
    expect((await parse(["--debug=true", "state", "x"])).globals.debug).toBe(true);
    expect((await parse(["-debug", "state", "x"])).globals.debug).toBe(true);
  });
  test("subcommand booleans: -force, --force=false, -detach=true", async () => {
    expect((await parse(["delete", "-force", "x"])).opts.force).toBe(true);
    expect((await parse(["delete", "--force=false", "x"])).opts.force).toBeUndefined();
    expect((await parse(["exec", "-detach=true", "-process", "/p", "x"])).opts.detach).toBe(true);
  });
  test("combined short flags stay short: exec -td", async () => {
    const got = await parse(["exec", "-td", "x", "sh"]);
    expect(got.opts.tty).toBe(true);
    expect(got.opts.detach).toBe(true);
  });
  test("exec: flags after the command belong to the process", async () => {
    const got = await parse(["exec", "-e", "A=1", "--env", "B=2", "x", "ls", "-root", "--debug"]);
    expect(got.args).toEqual(["x", ["ls", "-root", "--debug"]]);
    expect(got.opts.env).toEqual(["A=1", "B=2"]);
  });
  test("short valued flags: create -b DIR, list -f json", async () => {
    expect((await parse(["create", "-b", "/bb", "x"])).opts.bundle).toBe("/bb");
    expect((await parse(["list", "-f", "json"])).opts.format).toBe("json");
  });
  test("a flag that does not exist is an error, not ignored", async () => {
    await expect(parse(["create", "--no-such-flag", "x"])).rejects.toThrow();
    await expect(parse(["-nosuch", "state", "x"])).rejects.toThrow();
  });
  test("missing container id is an error", async () => {
    await expect(parse(["state"])).rejects.toThrow();
  });
});
