/**
 * The pod both CRI test files run, whatever the runtime handler: a busybox httpd ("server")
 * serving a page on port 8080, and a client fetching it by localhost (the pod's shared
 * network namespace) that exits 0 once it has it; and the wait, after the files removed it
 * through CRI, until nothing of it is left. The files assert on what these return.
 */
import { sleep, waitFor } from "../proc.ts";
import type { CallOptions } from "./client.ts";
import { containerConfig, podConfig } from "./configs.ts";
import type { CriContainerd } from "./containerd.ts";
import type { ContainerStatus, PodSandboxConfig } from "./types.ts";

export interface WebPod {
  pod: PodSandboxConfig;
  podId: string;
  logDir: string;
  server: string;
  client: string;
}

/** The pod "web" with its two containers, created and started on `handler`. */
export async function startWebPod(
  h: CriContainerd,
  handler: string,
  page: string,
  opts: { labels?: Record<string, string>; retryS?: number; call?: CallOptions } = {},
): Promise<WebPod> {
  const cri = h.cri;
  const logDir = h.podLogDir("web");
  const pod = podConfig("web", logDir, opts.labels ? { labels: opts.labels } : {});
  const podId = await cri.runPodSandbox(pod, handler, opts.call);
  const start = async (name: string, script: string) => {
    const id = await cri.createContainer(
      podId,
      containerConfig(name, h.image, ["sh", "-c", script]),
      pod,
      opts.call,
    );
    await cri.startContainer(id);
    return id;
  };
  const server = await start(
    "server",
    `mkdir -p /www && echo ${page} > /www/index.html && exec httpd -f -p 8080 -h /www`,
  );
  const client = await start(
    "client",
    `for i in $(seq 1 100); do wget -qO- http://localhost:8080/index.html && exit 0; sleep ${opts.retryS ?? 0.1}; done; exit 1`,
  );
  return { pod, podId, logDir, server, client };
}

/** The client's status once it has exited. */
export function clientExited(h: CriContainerd, p: WebPod, timeoutMs?: number): Promise<ContainerStatus> {
  return waitFor(
    "the client to exit",
    async () => {
      const s = (await h.cri.containerStatus(p.client)).status;
      return s?.state === "CONTAINER_EXITED" ? s : undefined;
    },
    timeoutMs,
  );
}

/**
 * What `h.leftovers()` still lists once the shims have had their moment to exit after the
 * last delete: polled every 200 ms, `rounds` times at most, until it is empty and `gone()` holds.
 */
export async function waitNothingLeft(h: CriContainerd, rounds = 50, gone = () => true): Promise<string[]> {
  let left: string[] = [];
  for (let i = 0; i < rounds; i++) {
    left = await h.leftovers();
    if (left.length === 0 && gone()) break;
    await sleep(200);
  }
  return left;
}
