/**
 * Where a container's rootfs writes go (config/writable-layer.ts): the annotation over
 * vm.json, the guest layer's kinds, and the refusals (a bad value, a pod's container).
 */
import { describe, expect, test } from "bun:test";
import type { ResolvedBundle } from "../../src/config/resolver.ts";
import { guestLayer, WRITABLE_LAYER_ANNOTATION, writableLayer } from "../../src/config/writable-layer.ts";

function bundle(
  annotations: Record<string, string> | undefined,
  vmDefault?: "share" | "guest" | "guest-memory",
  readonly = false,
): ResolvedBundle {
  return {
    bundle: "/b",
    configFile: "/b/config.json",
    oci: { ociVersion: "1.2.0", root: { path: "rootfs", readonly }, annotations } as ResolvedBundle["oci"],
    rootfs: "/b/rootfs",
    vm: {
      vm: { hypervisorParameters: [], kernelPath: "/k", kernelParameters: [], writableLayer: vmDefault },
      source: "/etc/vm.json",
    },
    hypervisorArgsFile: "/etc/hypervisor.args",
  };
}

const POD_MEMBER = { "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "s" };

describe("writable layer", () => {
  test("the share by default; vm.json's setting; the annotation over it", () => {
    expect(writableLayer(bundle(undefined))).toBe("share");
    expect(guestLayer(bundle(undefined))).toBeUndefined();
    expect(guestLayer(bundle(undefined, "guest"), false)).toBe("disk");
    expect(guestLayer(bundle(undefined, "guest-memory"))).toBe("memory");
    expect(guestLayer(bundle({ [WRITABLE_LAYER_ANNOTATION]: "share" }, "guest"))).toBeUndefined();
    expect(guestLayer(bundle({ [WRITABLE_LAYER_ANNOTATION]: "guest-memory" }, "share"))).toBe("memory");
  });

  test("a read-only rootfs has no layer; vm.json's setting does not apply to a pod's containers", () => {
    expect(guestLayer(bundle({ [WRITABLE_LAYER_ANNOTATION]: "guest" }, undefined, true))).toBeUndefined();
    expect(guestLayer(bundle(POD_MEMBER, "guest"))).toBeUndefined();
    expect(guestLayer(bundle({ "io.kubernetes.cri.container-type": "sandbox" }, "guest"))).toBeUndefined();
    expect(guestLayer(bundle(undefined, "guest"), true)).toBeUndefined();
  });

  test("errors name the annotation: a value it does not take, a pod's container asking for a layer", () => {
    expect(() => writableLayer(bundle({ [WRITABLE_LAYER_ANNOTATION]: "disk" }))).toThrow(
      `/b/config.json: annotation "${WRITABLE_LAYER_ANNOTATION}": expected "share", "guest", "guest-memory", got "disk"`,
    );
    expect(() => guestLayer(bundle({ ...POD_MEMBER, [WRITABLE_LAYER_ANNOTATION]: "guest" }))).toThrow(
      `annotation "${WRITABLE_LAYER_ANNOTATION}": "guest" is not supported for a pod's containers`,
    );
    expect(() => guestLayer(bundle({ [WRITABLE_LAYER_ANNOTATION]: "guest-memory" }), true)).toThrow(
      `"guest-memory" is not supported when the runtime is run as a user`,
    );
  });
});
