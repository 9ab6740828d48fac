/**
 * runtime-spec config-linux.md "namespaces": a path that is not a namespace of its declared
 * type MUST fail; a host namespace the VM cannot join fails, naming it; a network namespace
 * path is kept for the stand-in. Network namespaces here are this test's own (ip netns).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { OciConfig } from "../../src/config/oci-schema.ts";
import { checkNamespaces, podNamespaces } from "../../src/lifecycle/namespaces.ts";
import { podRole } from "../../src/lifecycle/pod.ts";
import { namespaceTypeOf } from "../../src/sys/namespaces.ts";
import { tempDir } from "../lib/cli.ts";

const NETNS = `cc-oci-ns-test-${process.pid}`;
Bun.spawnSync(["ip", "netns", "add", NETNS]);
afterAll(() => {
  Bun.spawnSync(["ip", "netns", "delete", NETNS]);
});

const withNamespaces = (namespaces: { type: string; path?: string }[]) =>
  ({ ociVersion: "1.0.2", root: { path: "r" }, linux: { namespaces } }) as unknown as OciConfig;

describe("runtime-spec namespaces", () => {
  test("the kernel says what a path is", () => {
    expect(namespaceTypeOf("/proc/self/ns/net")).toBe("network");
    expect(namespaceTypeOf("/proc/self/ns/ipc")).toBe("ipc");
    expect(namespaceTypeOf(`/run/netns/${NETNS}`)).toBe("network");
    const file = join(tempDir(), "plain");
    writeFileSync(file, "");
    expect(namespaceTypeOf(file)).toBeUndefined();
  });

  test("a network namespace: asked (own), or named by path (joined); none (the host's network) is an error", () => {
    expect(() => checkNamespaces(withNamespaces([{ type: "pid" }]), "c.json")).toThrow(
      /c.json: field "linux.namespaces" has no network namespace: .*host's network \(--network host\), which a VM cannot share/,
    );
    expect(checkNamespaces(withNamespaces([{ type: "network" }]), "c.json")).toEqual({ kind: "own" });
    expect(() =>
      checkNamespaces(withNamespaces([{ type: "network", path: "/proc/self/ns/net" }]), "c.json"),
    ).toThrow(/\/proc\/self\/ns\/net is the caller's own network namespace \(--network host\)/);
    const path = `/run/netns/${NETNS}`;
    expect(checkNamespaces(withNamespaces([{ type: "network", path }]), "c.json")).toEqual({
      kind: "path",
      path,
    });
  });

  test("a path of the wrong type, a missing one, or not a namespace: an error naming the field", () => {
    expect(() =>
      checkNamespaces(withNamespaces([{ type: "network", path: "/proc/self/ns/ipc" }]), "c.json"),
    ).toThrow('c.json: field "linux.namespaces[0]": /proc/self/ns/ipc is a ipc namespace, not a network one');
    expect(() =>
      checkNamespaces(
        withNamespaces([{ type: "pid" }, { type: "network", path: "/nonexistent/ns" }]),
        "c.json",
      ),
    ).toThrow(/field "linux.namespaces\[1\]": network namespace \/nonexistent\/ns: .*no such file/i);
    const file = join(tempDir(), "plain");
    writeFileSync(file, "");
    expect(() => checkNamespaces(withNamespaces([{ type: "uts", path: file }]), "c.json")).toThrow(
      /is not a namespace, not a uts one/,
    );
  });

  test("a host namespace the VM cannot join is refused, naming it", () => {
    expect(() =>
      checkNamespaces(withNamespaces([{ type: "ipc", path: "/proc/self/ns/ipc" }]), "c.json"),
    ).toThrow(
      'c.json: field "linux.namespaces[0]": joining the existing ipc namespace /proc/self/ns/ipc is not possible: the container runs in its own VM',
    );
  });
});

describe("pods (CRI annotations)", () => {
  test("the role: containerd's and CRI-O's annotations; none is a container alone", () => {
    expect(podRole("a", {}, "c.json")).toEqual({ kind: "alone" });
    expect(podRole("s", { "io.kubernetes.cri.container-type": "sandbox" }, "c.json")).toEqual({
      kind: "sandbox",
    });
    expect(
      podRole(
        "a",
        { "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "s" },
        "c.json",
      ),
    ).toEqual({ kind: "member", sandbox: "s" });
    expect(
      podRole(
        "a",
        { "io.kubernetes.cri-o.ContainerType": "container", "io.kubernetes.cri-o.SandboxID": "s" },
        "c.json",
      ),
    ).toEqual({ kind: "member", sandbox: "s" });
    expect(() => podRole("a", { "io.kubernetes.cri.container-type": "container" }, "c.json")).toThrow(
      'c.json: annotation "io.kubernetes.cri.container-type" is "container": annotation "io.kubernetes.cri.sandbox-id" is required',
    );
    expect(() => podRole("a", { "io.kubernetes.cri.container-type": "pause" }, "c.json")).toThrow(
      'expected "sandbox" or "container", got "pause"',
    );
  });

  test("a pod's container joins the sandbox's namespaces named by its pid; another is refused", () => {
    const sandbox = process.pid;
    const join = podNamespaces(
      withNamespaces([
        { type: "network", path: `/proc/${sandbox}/ns/net` },
        { type: "ipc", path: `/proc/${sandbox}/ns/ipc` },
        { type: "uts", path: `/proc/${sandbox}/ns/uts` },
        { type: "mount" },
        { type: "pid" },
      ]),
      "c.json",
      sandbox,
    );
    expect(join).toEqual(["ipc", "uts"]);
    // A network namespace that is not the sandbox's: the pod has one VM, one network.
    expect(() =>
      podNamespaces(withNamespaces([{ type: "network", path: `/run/netns/${NETNS}` }]), "c.json", sandbox),
    ).toThrow(/field "linux.namespaces\[0\]": .* is not the network namespace of the pod's sandbox/);
    expect(() =>
      podNamespaces(withNamespaces([{ type: "mount", path: `/proc/${sandbox}/ns/mnt` }]), "c.json", sandbox),
    ).toThrow(/joining the existing mount namespace .* is not possible: a pod's containers share only/);
  });
});
