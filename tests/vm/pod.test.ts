/**
 * A pod in one VM (lifecycle/pod.ts), driven as CRI drives the runtime, by annotations:
 * a sandbox container boots the VM; a web server and a client, each with its own rootfs,
 * are created in it and talk over the loopback; they share the sandbox's IPC and UTS
 * namespaces in the guest; killing one leaves the VM; the sandbox cannot be deleted while
 * they run; nothing is left at the end. One boot.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mountsBelow } from "../../src/sys/mounts.ts";
import { makeBundle } from "../lib/bundle.ts";
import { tempDir } from "../lib/cli.ts";
import { qemuProcesses, Runtime } from "../lib/runtime.ts";

const rt = new Runtime();
const POD = "pod-sandbox";
const TYPE = "io.kubernetes.cri.container-type";
const SANDBOX = "io.kubernetes.cri.sandbox-id";
let sandboxPid = 0;

type Spec = Parameters<NonNullable<Parameters<typeof makeBundle>[0]["edit"]>>[0];

/** A pod container's bundle: CRI's annotations and namespace paths (the sandbox's pid). */
function memberBundle(args: string[], writable = false, edit?: (spec: Spec) => void): string {
  return makeBundle({
    args,
    writable,
    edit: (spec) => {
      spec.annotations = { [TYPE]: "container", [SANDBOX]: POD };
      // CRI sets no hostname for a pod's container: it is the sandbox's (shared UTS).
      delete spec.hostname;
      const linux = spec.linux as { namespaces: { type: string; path?: string }[] };
      linux.namespaces = linux.namespaces.map((ns) =>
        ["network", "ipc", "uts"].includes(ns.type)
          ? { type: ns.type, path: `/proc/${sandboxPid}/ns/${ns.type === "network" ? "net" : ns.type}` }
          : ns,
      );
      edit?.(spec);
    },
  });
}

async function statusOf(id: string): Promise<string> {
  const r = await rt.run(["state", id]);
  return r.code === 0 ? (JSON.parse(r.stdout) as { status: string }).status : `gone: ${r.stderr}`;
}

async function waitStopped(id: string): Promise<void> {
  for (let i = 0; i < 200 && (await statusOf(id)) !== "stopped"; i++) await Bun.sleep(100);
  expect(await statusOf(id)).toBe("stopped");
}

beforeAll(async () => {
  const sandbox = makeBundle({
    args: ["sleep", "1000000"],
    edit: (spec) => {
      spec.annotations = { [TYPE]: "sandbox", [SANDBOX]: POD };
      spec.hostname = "the-pod";
    },
  });
  expect((await rt.run(["run", "-d", "--bundle", sandbox, POD])).code).toBe(0);
  sandboxPid = (JSON.parse((await rt.run(["state", POD])).stdout) as { pid: number }).pid;
  expect(sandboxPid).toBeGreaterThan(0);
}, 180_000);

afterAll(async () => {
  await rt.dispose();
});

describe("a pod in one VM", () => {
  test("a server and a client, each with its own rootfs, talk over the loopback in the sandbox's VM", async () => {
    const web = memberBundle(["httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www"], true);
    mkdirSync(join(web, "rootfs/www"));
    writeFileSync(join(web, "rootfs/www/hello.txt"), "hello from the web container\n");
    const up = await rt.run(["run", "-d", "--bundle", web, "web"]);
    expect(up).toMatchObject({ code: 0, stderr: "" });
    expect(await statusOf("web")).toBe("running");
    // No second VM: the pod's one QEMU runs them all.
    expect(qemuProcesses(rt.root)).toHaveLength(1);

    const client = memberBundle([
      "sh",
      "-c",
      "for i in $(seq 50); do wget -qO- http://127.0.0.1:8080/hello.txt && exit 0; sleep 0.2; done; exit 7",
    ]);
    const got = await rt.run(["run", "--bundle", client, "client"]);
    expect(got).toMatchObject({ code: 0, stdout: "hello from the web container\n" });
    expect(qemuProcesses(rt.root)).toHaveLength(1);
  }, 180_000);

  test("exec, ps and the sandbox's IPC and UTS namespaces", async () => {
    const inWeb = await rt.run([
      "exec",
      "web",
      "sh",
      "-c",
      "cat /www/hello.txt; hostname; readlink /proc/self/ns/ipc",
    ]);
    expect(inWeb.code).toBe(0);
    const [file, hostname, ipc] = inWeb.stdout.trim().split("\n");
    expect(file).toBe("hello from the web container");
    expect(hostname).toBe("the-pod");
    const inSandbox = await rt.run([
      "exec",
      POD,
      "sh",
      "-c",
      "readlink /proc/self/ns/ipc; readlink /proc/self/ns/mnt",
    ]);
    const [sandboxIpc, sandboxMnt] = inSandbox.stdout.trim().split("\n");
    expect(ipc).toBe(sandboxIpc as string);
    // Its own rootfs: a mount namespace of its own, and no file of the sandbox's.
    const own = await rt.run(["exec", "web", "sh", "-c", "readlink /proc/self/ns/mnt; ls /www"]);
    expect(own.stdout.trim().split("\n")).toEqual([
      expect.not.stringMatching(sandboxMnt as string),
      "hello.txt",
    ]);
    const ps = await rt.run(["ps", "web"]);
    expect(ps.stdout).toContain("httpd");
    expect(ps.stdout).not.toContain("sleep 1000000");
  }, 120_000);

  test("pause freezes the one container, not the pod's VM", async () => {
    expect((await rt.run(["pause", "web"])).code).toBe(0);
    expect(await statusOf("web")).toBe("paused");
    expect((await rt.run(["exec", POD, "true"])).code).toBe(0);
    expect((await rt.run(["resume", "web"])).code).toBe(0);
    expect((await rt.run(["exec", "web", "true"])).code).toBe(0);
  }, 120_000);

  test("a checkpoint of a pod's container is refused, naming it", async () => {
    for (const id of ["web", POD]) {
      const r = await rt.run(["checkpoint", "--image-path", join(tempDir(), "ck"), id]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(
        `checkpoint of a pod's container is not supported (container "${id}" is one)`,
      );
    }
    expect(await statusOf("web")).toBe("running");
  }, 60_000);

  test("the sandbox goes last; killing a container leaves the VM", async () => {
    const refused = await rt.run(["delete", POD]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("web");
    expect(await statusOf(POD)).toBe("running");

    expect((await rt.run(["kill", "web", "KILL"])).code).toBe(0);
    await waitStopped("web");
    expect((await rt.run(["exec", POD, "true"])).code).toBe(0);
    // The web container's shares left the sandbox's with it.
    const shares = join(rt.root, POD, "shared/pods");
    expect(mountsBelow(shares)).toEqual([]);
    expect(existsSync(join(shares, "web"))).toBe(false);
    // (`run` in the foreground deleted the client as it exited.)
    expect((await rt.run(["delete", "web"])).code).toBe(0);

    expect((await rt.run(["kill", POD, "KILL"])).code).toBe(0);
    await waitStopped(POD);
    expect((await rt.run(["delete", POD])).code).toBe(0);
    expect(rt.leftovers()).toEqual([]);
    expect(mountsBelow(rt.root)).toEqual([]);
    expect(qemuProcesses(rt.root)).toEqual([]);
  }, 120_000);

  test("a pod's container needs its sandbox running, named by its annotation", async () => {
    const orphan = memberBundle(["true"]);
    const r = await rt.run(["create", "--bundle", orphan, "orphan"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`the pod's sandbox "${POD}"`);
    expect(rt.leftovers()).toEqual([]);
  }, 60_000);
});
