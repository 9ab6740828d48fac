import { describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { resolveBundle } from "../../src/config/resolver.ts";
import { Logger } from "../../src/log/logger.ts";
import { tempDir } from "../lib/cli.ts";

const LEGACY_VM = {
  path: "/usr/bin/qemu-legacy",
  image: "/img/legacy.img",
  kernel: { path: "/k/legacy", parameters: "console=ttyS0 quiet" },
};
const SPEC_VM = {
  hypervisor: { path: "/usr/bin/qemu-spec", parameters: ["-m", "128"] },
  kernel: { path: "/k/spec", parameters: ["a=1", "b"], initrd: "/k/initrd" },
  image: { path: "/img/spec.erofs", format: "raw" },
};

function setup(oci: Record<string, unknown> = {}) {
  const top = tempDir();
  const dirs = { bundle: join(top, "bundle"), sys: join(top, "etc"), data: join(top, "share") };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  const config = {
    ociVersion: "1.2.0",
    root: { path: "rootfs" },
    process: { user: { uid: 0, gid: 0 }, args: ["sh"], cwd: "/" },
    ...oci,
  };
  writeFileSync(join(dirs.bundle, "config.json"), JSON.stringify(config));
  const logFile = join(top, "log");
  const logger = new Logger({ logFile, logFormat: "text", globalLogs: [], debug: false });
  const resolve = () => resolveBundle(dirs.bundle, logger, [dirs.sys, dirs.data]);
  return { top, dirs, logFile, resolve };
}

describe("VM config sources", () => {
  test("config.json's vm object wins over every vm.json (legacy shape)", () => {
    const s = setup({ vm: LEGACY_VM });
    for (const d of Object.values(s.dirs)) writeFileSync(join(d, "vm.json"), JSON.stringify(SPEC_VM));
    writeFileSync(join(s.dirs.data, "hypervisor.args"), "/usr/bin/qemu\n");
    const r = s.resolve();
    expect(r.vm.source).toBe(join(s.dirs.bundle, "config.json"));
    expect(r.vm.vm).toEqual({
      hypervisorPath: "/usr/bin/qemu-legacy",
      hypervisorParameters: [],
      kernelPath: "/k/legacy",
      kernelParameters: ["console=ttyS0", "quiet"],
      initrd: undefined,
      imagePath: "/img/legacy.img",
    });
    expect(readFileSync(s.logFile, "utf8")).toContain(
      `using VM config ${join(s.dirs.bundle, "config.json")}`,
    );
  });

  test("config.json's vm object in the runtime-spec shape", () => {
    const s = setup({ vm: SPEC_VM });
    writeFileSync(join(s.dirs.data, "hypervisor.args"), "/usr/bin/qemu\n");
    const vm = s.resolve().vm.vm;
    expect(vm.hypervisorPath).toBe("/usr/bin/qemu-spec");
    expect(vm.hypervisorParameters).toEqual(["-m", "128"]);
    expect(vm.kernelParameters).toEqual(["a=1", "b"]);
    expect(vm.initrd).toBe("/k/initrd");
    expect(vm.imagePath).toBe("/img/spec.erofs");
    expect(vm.imageFormat).toBe("raw");
  });

  for (const where of ["bundle", "sys", "data"] as const) {
    test(`vm.json and hypervisor.args: the ${where} directory wins over those after it`, () => {
      const s = setup();
      const order = ["bundle", "sys", "data"] as const;
      for (const d of order.slice(order.indexOf(where))) {
        writeFileSync(join(s.dirs[d], "vm.json"), JSON.stringify({ ...LEGACY_VM, image: `/img/${d}` }));
        writeFileSync(join(s.dirs[d], "hypervisor.args"), `/usr/bin/qemu-${d}\n`);
      }
      const r = s.resolve();
      expect(r.vm.source).toBe(join(s.dirs[where], "vm.json"));
      expect(r.vm.vm.imagePath).toBe(`/img/${where}`);
      expect(r.hypervisorArgsFile).toBe(join(s.dirs[where], "hypervisor.args"));
      const log = readFileSync(s.logFile, "utf8");
      expect(log).toContain(`using VM config ${join(s.dirs[where], "vm.json")}`);
      expect(log).toContain(`using hypervisor args ${join(s.dirs[where], "hypervisor.args")}`);
    });
  }

  test("no vm anywhere: the error lists where it looked", () => {
    const s = setup();
    expect(() => s.resolve()).toThrow(
      /no VM configuration: .*config.json has no "vm" object and no vm.json in .*bundle, .*etc, .*share/,
    );
  });

  test("no hypervisor.args anywhere is an error naming the file", () => {
    const s = setup({ vm: LEGACY_VM });
    expect(() => s.resolve()).toThrow(/no hypervisor.args in /);
  });

  test("rootfs is made absolute against the bundle", () => {
    const s = setup({ vm: LEGACY_VM });
    writeFileSync(join(s.dirs.sys, "hypervisor.args"), "/q\n");
    expect(s.resolve().rootfs).toBe(join(s.dirs.bundle, "rootfs"));
  });
});

describe("schema errors name the file and the field", () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    [
      "process.args wrong type",
      { process: { user: { uid: 0, gid: 0 }, args: [1], cwd: "/" } },
      /config\.json: field "process\.args\[0\]": /,
    ],
    [
      "process.args empty",
      { process: { user: { uid: 0, gid: 0 }, args: [], cwd: "/" } },
      /field "process\.args": expected at least one argument/,
    ],
    [
      "relative cwd",
      { process: { user: { uid: 0, gid: 0 }, args: ["sh"], cwd: "tmp" } },
      /field "process\.cwd": expected an absolute path/,
    ],
    [
      "negative uid",
      { process: { user: { uid: -1, gid: 0 }, args: ["sh"], cwd: "/" } },
      /field "process\.user\.uid"/,
    ],
    ["root missing", { root: undefined }, /field "root": /],
    ["hook without path", { hooks: { prestart: [{ args: [] }] } }, /field "hooks\.prestart\[0\]\.path"/],
    ["mount without destination", { mounts: [{ type: "bind" }] }, /field "mounts\[0\]\.destination"/],
    ["annotation not a string", { annotations: { a: 1 } }, /field "annotations\.a"/],
  ];
  for (const [name, oci, re] of cases) {
    test(name, () => {
      const s = setup(oci);
      expect(() => s.resolve()).toThrow(re);
    });
  }

  test("vm object: kernel path missing", () => {
    const s = setup({ vm: { image: "/i", kernel: {} } });
    expect(() => s.resolve()).toThrow(/config\.json \(vm\): field "kernel\.path"/);
  });

  test("vm.json: bad field named with the vm.json path", () => {
    const s = setup();
    writeFileSync(
      join(s.dirs.sys, "vm.json"),
      JSON.stringify({ hypervisor: { path: 3 }, kernel: { path: "/k" } }),
    );
    expect(() => s.resolve()).toThrow(
      new RegExp(`${join(s.dirs.sys, "vm.json")}: field "hypervisor\\.path"`),
    );
  });

  test("invalid JSON names the file", () => {
    const s = setup();
    writeFileSync(join(s.dirs.bundle, "config.json"), "{nope");
    expect(() => s.resolve()).toThrow(/config\.json: invalid JSON/);
  });

  test("unknown fields are kept", () => {
    const s = setup({ vm: LEGACY_VM, "org.example.extension": { x: 1 } });
    writeFileSync(join(s.dirs.sys, "hypervisor.args"), "/q\n");
    expect((s.resolve().oci as Record<string, unknown>)["org.example.extension"]).toEqual({ x: 1 });
  });
});
