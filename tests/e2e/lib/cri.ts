/**
 * Kubernetes' CRI for the e2e tests, without kubelet or crictl: one import for the test files
 * (and the name the other libs' comments use). The parts, under lib/cri/:
 * - types.ts: the CRI `runtime.v1` messages (camelCase, as proto-loader gives them);
 * - client.ts: `Cri`, the client (RuntimeService, ImageService), and `CriError`;
 * - transport.ts: how the calls reach the socket: grpc-js in the machine's node (bridge.mjs,
 *   the default) or in this process, over the vendored subset api.proto;
 * - configs.ts: `podConfig`, `containerConfig` shaped like kubelet's, `readCriLog`;
 * - containerd.ts: `CriContainerd`, containerd 1.6 with its CRI plugin in the test's network
 *   namespace (CNI bridge, images, runtime handlers `runc` and `cc`), its teardown and
 *   `leftovers()`;
 * - suite.ts: `criSuite`, a CRI test file's beforeAll/afterAll;
 * - web-pod.ts: the pod both files run (an httpd and a client by localhost), and the wait
 *   until nothing of it is left.
 */

export * from "./cri/client.ts";
export * from "./cri/configs.ts";
export * from "./cri/containerd.ts";
export * from "./cri/suite.ts";
export * from "./cri/types.ts";
export * from "./cri/web-pod.ts";
