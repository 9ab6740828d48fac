/** The subcommands complete without a VM: version, spec, features, state, list; and logging. */
import { describe, expect, test } from "bun:test";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { OciConfig } from "../../src/config/oci-schema.ts";
import { StateStore } from "../../src/state/store.ts";
import { ROOT_DIR, runCli, tempDir } from "../lib/cli.ts";

describe("version", () => {
  test("--version, -v and version print runc's three lines", async () => {
    for (const argv of [["--version"], ["-v"], ["version"]]) {
      const r = await runCli(argv);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^cc-oci-runtime version \d+\.\d+\.\d+\ncommit: \S+\nspec: 1\.\d+\.\d+\n$/);
    }
  });
});

describe("help", () => {
  test("help, help CMD, and --help on every subcommand exit 0 with a usage line", async () => {
    const top = await runCli(["help"]);
    expect(top.code).toBe(0);
    const names = [...top.stdout.matchAll(/^ {2}([a-z]+)(?:\|[a-z]+)?(?: |$)/gm)].map((m) => m[1] as string);
    expect(names).toEqual(
      expect.arrayContaining(["create", "start", "run", "exec", "checkpoint", "features", "help"]),
    );
    for (const name of names.filter((n) => n !== "help")) {
      const r = await runCli([name, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: cc-oci-runtime ${name}`);
    }
    const kill = await runCli(["help", "kill"]);
    expect(kill.stdout).toContain("Usage: cc-oci-runtime kill [options] <container-id> [signal]");
  }, 60_000);
});

describe("spec", () => {
  test("writes a valid config.json and refuses to overwrite it", async () => {
    const dir = tempDir();
    const r = await runCli(["spec", "--bundle", dir]);
    expect(r.code).toBe(0);
    const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    expect(OciConfig.safeParse(cfg).success).toBe(true);
    expect(cfg.process.args).toEqual(["sh"]);
    expect(cfg.root).toEqual({ path: "rootfs", readonly: true });
    const again = await runCli(["spec", "-b", dir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("config.json: file already exists");
  });
  test("--rootless adds a user namespace and keeps the network one (a VM needs its own)", async () => {
    const dir = tempDir();
    expect((await runCli(["spec", "--rootless"], { cwd: dir })).code).toBe(0);
    const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    const types = cfg.linux.namespaces.map((n: { type: string }) => n.type);
    expect(types).toContain("user");
    expect(types).toContain("network");
    expect(types).not.toContain("cgroup");
    // As runc's: no uid=/gid= mount options (devpts gid=5 is not mapped).
    expect(JSON.stringify(cfg.mounts)).not.toMatch(/[ug]id=/);
  });
});

describe("features", () => {
  test("prints runtime-spec features JSON", async () => {
    const r = await runCli(["features"]);
    expect(r.code).toBe(0);
    const f = JSON.parse(r.stdout);
    expect(f.ociVersionMin).toBe("1.0.0");
    expect(f.hooks).toContain("poststop");
    expect(f.linux.cgroup.v2).toBe(true);
  });
});

describe("state and list", () => {
  function seeded() {
    const root = tempDir();
    const store = new StateStore(root);
    store.reserve("c1", {
      ociVersion: "1.2.0",
      id: "c1",
      status: "running",
      bundle: "/b1",
      rootfs: "/b1/rootfs",
      created: "2026-01-01T00:00:00.000Z",
      owner: "root",
      annotations: { a: "b" },
      // A stand-in that is not alive: the container must read as stopped.
      standin: { pid: 999999, startTime: 1 },
      vm: {
        hypervisor: "/usr/bin/qemu",
        kernel: "/k",
        image: "/i",
        accelerator: "tcg",
        uuid: "u",
        name: "n",
        vcpus: 1,
        memoryMiB: 256,
      },
    });
    return root;
  }

  test("state of an unknown id: exit 1, error on stderr and as the last --log json line", async () => {
    const root = tempDir();
    const log = join(root, "log.json");
    const r = await runCli(["--root", root, "--log", log, "--log-format", "json", "state", "nosuch"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain('container "nosuch" does not exist');
    const lines = readFileSync(log, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const last = lines[lines.length - 1];
    expect(last.level).toBe("error");
    expect(last.msg).toBe('container "nosuch" does not exist');
    expect(new Date(last.time).toISOString()).toBe(last.time);
    // The global log is always appended, plain text with the pid.
    expect(readFileSync(join(root, "cc-oci-runtime.log"), "utf8")).toMatch(
      /\[\d+\] error: container "nosuch" does not exist/,
    );
  });

  test("state prints runtime-spec JSON; a dead stand-in reads as stopped with pid 0", async () => {
    const root = seeded();
    const r = await runCli(["--root", root, "state", "c1"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      ociVersion: "1.2.0",
      id: "c1",
      status: "stopped",
      pid: 0,
      bundle: "/b1",
      rootfs: "/b1/rootfs",
      created: "2026-01-01T00:00:00.000Z",
      // The config's, and the VM's real size.
      annotations: { a: "b", "io.cc-oci-runtime.vm.vcpus": "1", "io.cc-oci-runtime.vm.memory-mib": "256" },
      owner: "root",
    });
  });

  test("list: table, json, quiet, --all", async () => {
    const root = seeded();
    const table = await runCli(["--root", root, "list"]);
    expect(table.stdout.split("\n")[0]).toMatch(/^ID\s+PID\s+STATUS\s+BUNDLE\s+CREATED\s+OWNER$/);
    expect(table.stdout).toMatch(/c1\s+0\s+stopped\s+\/b1\s+2026-01-01T00:00:00.000Z\s+root/);
    const json = JSON.parse((await runCli(["--root", root, "list", "-f", "json"])).stdout);
    expect(json).toEqual([expect.objectContaining({ id: "c1", status: "stopped", pid: 0 })]);
    expect((await runCli(["--root", root, "list", "-q"])).stdout.trim()).toBe("c1");
    const all = await runCli(["--root", root, "list", "--all"]);
    expect(all.stdout.split("\n")[0]).toMatch(
      /HYPERVISOR\s+QEMU PID\s+VCPUS\s+MEMORY\s+RSS\s+PSS\s+TEMPLATE\s+KERNEL\s+IMAGE$/,
    );
    const allJson = JSON.parse((await runCli(["--root", root, "list", "--all", "--format", "json"])).stdout);
    expect(allJson[0].vm).toMatchObject({
      hypervisor: "/usr/bin/qemu",
      kernel: "/k",
      image: "/i",
      vcpus: 1,
      memoryMiB: 256,
    });
  });

  test("list -f json on an empty or missing root prints []", async () => {
    const r = await runCli(["--root", join(tempDir(), "none"), "list", "-f", "json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([]);
  });
});

describe("logging", () => {
  test("--log text format uses logrus' shape; --debug adds debug lines; nothing on stdout", async () => {
    const root = tempDir();
    const log = join(root, "log.txt");
    const r = await runCli(["--root", root, "--debug", "--log", log, "state", "x"]);
    expect(r.stdout).toBe("");
    const text = readFileSync(log, "utf8");
    expect(text).toMatch(/^time="[^"]+" level=debug msg=/m);
    expect(text.trim().split("\n").pop()).toMatch(/level=error msg="container \\"x\\" does not exist"/);
  });

  test("json lines parse; every failure's error is the last line; --global-log is appended too", async () => {
    const root = tempDir();
    const log = join(root, "log.json");
    const glob = join(root, "global.log");
    for (const argv of [
      ["state", "nosuch"],
      ["kill", "nosuch"],
      ["bogus-command"],
      ["create", "--bundle", join(root, "nob"), "c9"],
    ]) {
      const r = await runCli([
        "--root",
        root,
        "--log",
        log,
        "--log-format",
        "json",
        "--global-log",
        glob,
        ...argv,
      ]);
      expect(r.code).toBe(1);
      const lines = readFileSync(log, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      for (const l of lines) expect(Object.keys(l).sort()).toEqual(["level", "msg", "time"]);
      expect(lines[lines.length - 1].level).toBe("error");
    }
    expect(readFileSync(glob, "utf8").split("\n").filter(Boolean).length).toBeGreaterThanOrEqual(4);
  });

  test("logs are 0600 (an older 0644 one too) and --debug never logs an environment value", async () => {
    const root = tempDir();
    const log = join(root, "log.json");
    const global = join(root, "cc-oci-runtime.log");
    writeFileSync(global, "made by an older version\n", { mode: 0o644 });
    const spellings = ["-e", "S1=hunter1", "-eS2=hunter2", "--env", "S3=hunter3", "--env=S4=hunter4"];
    const r = await runCli([
      "--root",
      root,
      "--debug",
      "--log",
      log,
      "exec",
      ...spellings,
      "-env",
      "S5=hunter5",
      "nosuch",
      "true",
    ]);
    expect(r.code).toBe(255);
    for (const file of [log, global]) {
      const text = readFileSync(file, "utf8");
      expect(text).toContain("S1=<redacted>");
      expect(text).toContain("S5=<redacted>");
      expect(text).not.toMatch(/hunter/);
      expect(statSync(file).mode & 0o777).toBe(0o600);
    }
  });

  test("a bad --log-format is an error", async () => {
    const r = await runCli(["--log-format", "xml", "list"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("--log-format: expected text or json");
  });
});

describe("not yet implemented is an error, never a silent success", () => {
  test("delete --force of an unknown id exits 0 (containerd's cleanup call)", async () => {
    const root = tempDir();
    expect((await runCli(["--root", root, "delete", "--force", "nosuch"])).code).toBe(0);
    expect((await runCli(["--root", root, "delete", "nosuch"])).code).toBe(1);
  });
  test("bad container ids are refused", async () => {
    const root = tempDir();
    mkdirSync(join(root, "b"));
    writeFileSync(join(root, "b", "config.json"), "{}");
    const r = await runCli(["--root", root, "state", "../etc"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("invalid container id");
    expect(existsSync(join(root, "..", "etc", "state.json"))).toBe(false);
  });
});

describe("restore", () => {
  test("a terminal container restored without a console: the error names what restore takes", async () => {
    const images = tempDir();
    for (const f of ["inventory.img", "cc-externals.json"]) writeFileSync(join(images, f), "");
    const bundle = tempDir();
    mkdirSync(join(bundle, "rootfs"));
    expect((await runCli(["spec", "--bundle", bundle])).code).toBe(0);
    // The build's VM configuration, as a bundle of the VM tests carries it.
    const local = join(ROOT_DIR, "build/local");
    for (const f of readdirSync(local)) copyFileSync(join(local, f), join(bundle, f));
    const root = tempDir();
    const r = await runCli(["--root", root, "restore", "--image-path", images, "--bundle", bundle, "ck"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "process.terminal is true: restore needs --console-socket, or a terminal on its stdin",
    );
    const d = await runCli([
      "--root",
      root,
      "restore",
      "-d",
      "--image-path",
      images,
      "--bundle",
      bundle,
      "ck",
    ]);
    expect(d.stderr).toContain("process.terminal is true: restore needs --console-socket\n");
    expect(new StateStore(root).list()).toEqual([]);
  });
});
