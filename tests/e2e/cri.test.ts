/**
 * Kubernetes' way in (issue 17): containerd 1.6 with its CRI plugin (lib/cri/: a private
 * containerd in the file's network namespace, CNI bridge networking from Debian's
 * containernetworking-plugins, a CRI client in place of crictl) and the runtime handler `cc`
 * (the runc shim with this runtime as its BinaryName). One pod: its sandbox boots one VM;
 * a busybox httpd and a client, each with its own rootfs, run in that VM and talk over
 * localhost; the client's output is in its CRI log file; ExecSync in the server; the page
 * from the namespace's host side by the pod's address; then the containers and the pod
 * stopped and removed through CRI, and nothing left: no QEMU, stand-in, state directory,
 * mount, pod network namespace, CNI cache entry or shim. Requires root; installs containerd,
 * runc, the CNI plugins and node when missing; boots 1 VM.
 */
import { describe, expect } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { HOST_BOOT_ID, qemuProcesses, standinProcesses } from "../lib/runtime.ts";
import { clientExited, criSuite, readCriLog, startWebPod, waitNothingLeft } from "./lib/cri.ts";
import { BOOT_MS } from "./lib/suite.ts";

const PAGE = "hello-from-a-pod-in-a-vm";
const MS = 600_000;

const s = criSuite("cri", { ms: MS, vm: true, logs: ["cc"] });

describe("Kubernetes' CRI (containerd 1.6) with the runtime handler cc", () => {
  s.test(
    "a pod in one VM: server and client over localhost, logs, ExecSync, stop and remove, nothing left",
    async () => {
      const h = s.containerd;
      const cri = h.cri;
      const root = h.runtimeRoot("cc");
      const web = await startWebPod(h, "cc", PAGE, { retryS: 0.2, call: { timeoutMs: BOOT_MS } });
      const { podId, logDir, server, client } = web;
      const ps = await cri.podSandboxStatus(podId);
      expect(ps.status?.state).toBe("SANDBOX_READY");
      expect(ps.status?.runtimeHandler).toBe("cc");
      const ip = ps.status?.network?.ip ?? "";
      expect(ip).toStartWith(h.subnet.replace(/0\/24$/, ""));
      // The pod's three containers, one VM: the sandbox's.
      expect(qemuProcesses(root)).toHaveLength(1);

      const done = await clientExited(h, web, BOOT_MS);
      expect(done.exitCode).toBe(0);
      expect(done.logPath).toBe(join(logDir, "client/0.log"));
      const log = readCriLog(done.logPath);
      expect(log).toMatchObject({ stdout: `${PAGE}\n`, stderr: "" });

      // In a VM (its own kernel, whatever its version), with the sandbox's hostname (UTS).
      const inServer = await cri.execSync(
        server,
        ["sh", "-c", "cat /www/index.html; hostname; cat /proc/sys/kernel/random/boot_id"],
        60,
      );
      expect(inServer.exitCode).toBe(0);
      const [page, hostname, bootId] = inServer.stdout.trim().split("\n");
      expect(page).toBe(PAGE);
      expect(hostname).toBe("web");
      expect(bootId).not.toBe(HOST_BOOT_ID);
      const fail = await cri.execSync(server, ["sh", "-c", "echo oops >&2; exit 3"], 60);
      expect(fail).toMatchObject({ exitCode: 3, stdout: "", stderr: "oops\n" });

      // From the namespace's host side, by the pod's address (the VM took the pod's veth over).
      const fetched = await s.netns.run(["busybox", "wget", "-qO-", `http://${ip}:8080/index.html`], {
        timeout: 60_000,
      });
      expect(fetched.stdout).toBe(`${PAGE}\n`);

      const list = await cri.listContainers({ podSandboxId: podId });
      expect(Object.fromEntries(list.map((x) => [x.metadata?.name, x.state]))).toEqual({
        server: "CONTAINER_RUNNING",
        client: "CONTAINER_EXITED",
      });

      // httpd, PID 1 of its PID namespace, ignores SIGTERM: SIGKILL after the grace period.
      await cri.stopContainer(server, 2);
      expect((await cri.containerStatus(server)).status?.state).toBe("CONTAINER_EXITED");
      // The pod's VM runs on without its containers, until the pod stops.
      expect(qemuProcesses(root)).toHaveLength(1);
      await cri.removeContainer(server);
      await cri.removeContainer(client);
      await cri.stopPodSandbox(podId);
      await cri.removePodSandbox(podId);

      expect(await waitNothingLeft(h, 100, () => qemuProcesses(root).length === 0)).toEqual([]);
      expect(qemuProcesses(root)).toEqual([]);
      expect(standinProcesses(root)).toEqual([]);
      const states = existsSync(join(root, "k8s.io")) ? readdirSync(join(root, "k8s.io")) : [];
      expect(states.filter((n) => /^[0-9a-f]{64}$/.test(n))).toEqual([]);
      expect(readCriLog(join(logDir, "client/0.log")).stdout).toBe(`${PAGE}\n`);
    },
    MS,
  );
});
