/**
 * The CRI harness (lib/cri/) checked with Debian's runc, no VM: containerd 1.6 with its CRI
 * plugin in the file's network namespace, one pod (runtime handler `runc`) with two
 * containers, busybox `httpd` serving a page and a client fetching it by localhost (the pod's
 * shared network namespace); the client's CRI log file, ExecSync in the server, the page from
 * the namespace's host side by the pod's address; then every container and the pod stopped
 * and removed through CRI, and nothing left: no pod network namespace, no mount under the
 * workspace, no libcni cache entry, no address reservation, no runtime state, no shim. With
 * CC_E2E_CRI_DUMP=DIR it writes there containerd.toml, the conflist, the OCI config.json
 * containerd gave runc for the sandbox and for each container, their CRI statuses and the
 * client's log. Requires root; installs containerd, runc, the CNI plugins and node when
 * missing; boots no VM.
 */
import { describe, expect } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CRI_NETWORK, clientExited, criSuite, readCriLog, startWebPod, waitNothingLeft } from "./lib/cri.ts";

const PAGE = "hello-from-cri";
const MS = 300_000;

/** What CRI makes outside the workspace (lib/cri/containerd.ts): libcni's cache, the cgroup parent. */
const OUTSIDE = [
  "/var/lib/cni/results",
  ...["memory", "pids", "unified"].map((h) => `/sys/fs/cgroup/${h}/k8s.io`),
];
let existedBefore: string[] = [];

const s = criSuite("cri-runc-probe", {
  ms: MS,
  before: () => {
    existedBefore = OUTSIDE.filter((d) => existsSync(d));
  },
  // Gone again unless it was there before.
  after: () =>
    OUTSIDE.filter((d) => !existedBefore.includes(d) && existsSync(d)).map(
      (d) => `${d} is still there after the teardown`,
    ),
});

describe("containerd 1.6 CRI with runc", () => {
  s.test(
    "Version, Status and the imported images",
    async () => {
      const h = s.containerd;
      const cri = h.cri;
      const v = await cri.version();
      expect(v.runtimeName).toBe("containerd");
      expect(v.runtimeApiVersion).toBe("v1");
      const st = await cri.status();
      const cond = Object.fromEntries((st.status?.conditions ?? []).map((x) => [x.type, x.status]));
      expect(cond).toEqual({ RuntimeReady: true, NetworkReady: true });
      expect((await cri.imageStatus(h.image))?.repoTags).toContain(h.image);
      expect((await cri.imageStatus(h.pauseImage))?.repoTags).toContain(h.pauseImage);
      expect(await cri.imageStatus("localhost/not-there:latest")).toBeNull();
      const tags = (await cri.listImages()).flatMap((i) => i.repoTags);
      expect(tags).toEqual(expect.arrayContaining([h.image, h.pauseImage]));
    },
    MS,
  );

  s.test(
    "a pod: server and client, logs, ExecSync, then nothing left",
    async () => {
      const h = s.containerd;
      const cri = h.cri;
      const web = await startWebPod(h, "runc", PAGE, { labels: { app: "probe" } });
      const { podId, logDir, server, client } = web;

      const ps = await cri.podSandboxStatus(podId, true);
      expect(ps.status?.state).toBe("SANDBOX_READY");
      expect(ps.status?.runtimeHandler).toBe("runc");
      const ip = ps.status?.network?.ip ?? "";
      expect(ip).toStartWith(h.subnet.replace(/0\/24$/, ""));
      const info = JSON.parse(ps.info.info ?? "{}");
      // The pod's network namespace: a bind mount in containerd's state directory.
      expect(info.runtimeSpec?.linux?.namespaces).toContainEqual({
        type: "network",
        path: expect.any(String),
      });
      const podNetns: string = info.runtimeSpec.linux.namespaces.find(
        (n: { type: string }) => n.type === "network",
      ).path;
      expect(podNetns.startsWith(`${h.netnsDir}/cni-`)).toBe(true);
      expect(existsSync(podNetns)).toBe(true);

      // libcni's cache (no setting moves it in containerd 1.6): one file per network of the pod.
      expect(readdirSync("/var/lib/cni/results")).toEqual(
        expect.arrayContaining([`${CRI_NETWORK}-${podId}-eth0`, `cni-loopback-${podId}-lo`]),
      );

      const done = await clientExited(h, web);
      expect(done.exitCode).toBe(0);
      expect(done.reason).toBe("Completed");
      expect(done.logPath).toBe(join(logDir, "client/0.log"));
      const log = readCriLog(done.logPath);
      expect(log.stdout).toBe(`${PAGE}\n`);
      expect(log.stderr).toBe("");
      expect(log.lines[0]?.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/);

      const ex = await cri.execSync(server, ["cat", "/www/index.html"], 30);
      expect(ex).toMatchObject({ exitCode: 0, stdout: `${PAGE}\n`, stderr: "" });
      const fail = await cri.execSync(server, ["sh", "-c", "echo oops >&2; exit 3"], 30);
      expect(fail).toMatchObject({ exitCode: 3, stdout: "", stderr: "oops\n" });
      // Containers of the pod share its network namespace (PID namespaces are their own).
      const hn = await cri.execSync(server, ["hostname"], 30);
      expect(hn.stdout).toBe("web\n");
      const pid1 = await cri.execSync(server, ["cat", "/proc/1/cmdline"], 30);
      expect(pid1.stdout.replaceAll("\0", " ")).toContain("httpd");

      // From the namespace's host side, by the pod's address.
      const page = await s.netns.run(["busybox", "wget", "-qO-", `http://${ip}:8080/index.html`], {
        timeout: 30_000,
      });
      expect(page.stdout).toBe(`${PAGE}\n`);

      const list = await cri.listContainers({ podSandboxId: podId });
      expect(Object.fromEntries(list.map((x) => [x.metadata?.name, x.state]))).toEqual({
        server: "CONTAINER_RUNNING",
        client: "CONTAINER_EXITED",
      });
      expect((await cri.listPodSandbox({ labelSelector: { app: "probe" } })).map((p) => p.id)).toEqual([
        podId,
      ]);
      // Each container's runtime state is in the workspace (the handler's Root).
      expect(readdirSync(h.runtimeRoot("runc"))).toEqual(expect.arrayContaining([podId, server]));

      const dump = process.env.CC_E2E_CRI_DUMP;
      if (dump) {
        mkdirSync(dump, { recursive: true });
        const bundles = s.ws.path("containerd/state/io.containerd.runtime.v2.task/k8s.io");
        // The bundles of running tasks; the client's is gone with it (its spec is in CRI's status).
        copyFileSync(s.ws.path("containerd.toml"), join(dump, "containerd.toml"));
        copyFileSync(join(h.confDir, "10-cc-e2e-cri.conflist"), join(dump, "10-cc-e2e-cri.conflist"));
        copyFileSync(join(bundles, podId, "config.json"), join(dump, "sandbox.config.json"));
        copyFileSync(join(bundles, server, "config.json"), join(dump, "server.config.json"));
        const cv = await cri.containerStatus(client, true);
        const spec = JSON.parse(cv.info.info ?? "{}").runtimeSpec;
        Bun.write(join(dump, "client.config.json"), JSON.stringify(spec, null, 2));
        Bun.write(join(dump, "client.status.json"), JSON.stringify(cv, null, 2));
        const sv = await cri.containerStatus(server, true);
        Bun.write(join(dump, "server.status.json"), JSON.stringify(sv, null, 2));
        Bun.write(join(dump, "pod.status.json"), JSON.stringify(ps, null, 2));
        Bun.write(join(dump, "client.log"), readFileSync(done.logPath));
      }

      // httpd, PID 1 of its PID namespace, ignores SIGTERM: SIGKILL after the grace period.
      await cri.stopContainer(server, 2);
      const stopped = (await cri.containerStatus(server)).status;
      expect(stopped?.state).toBe("CONTAINER_EXITED");
      await cri.removeContainer(server);
      await cri.removeContainer(client);
      expect(await cri.listContainers({ podSandboxId: podId })).toEqual([]);
      await cri.stopPodSandbox(podId);
      expect((await cri.podSandboxStatus(podId)).status?.state).toBe("SANDBOX_NOTREADY");
      await cri.removePodSandbox(podId);
      await expect(cri.podSandboxStatus(podId, false, { timeoutMs: 10_000 })).rejects.toThrow(/NOT_FOUND/);
      expect(await waitNothingLeft(h)).toEqual([]);
      expect(existsSync(podNetns)).toBe(false);
      expect(readdirSync("/run/netns").filter((f) => f.startsWith("cni-"))).toEqual([]);
      // The log files stay (kubelet removes them with the pod's directory).
      expect(readCriLog(join(logDir, "client/0.log")).stdout).toBe(`${PAGE}\n`);
    },
    MS,
  );
});
