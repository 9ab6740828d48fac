/** Who the runtime runs as, and what follows from it: the default root, the share's security model. */
import { describe, expect, test } from "bun:test";
import { DEFAULT_ROOT, defaultRoot } from "../../src/cli/app.ts";
import { isIdentityMap, shareSecurityModel, userNamespaceRefusal } from "../../src/sys/privilege.ts";

describe("privilege", () => {
  test("the initial user namespace's uid_map is the identity over all ids; a podman-style map is not", () => {
    expect(isIdentityMap("         0          0 4294967295\n")).toBe(true);
    expect(isIdentityMap("         0       1000          1\n         1     100000      65536\n")).toBe(false);
    expect(isIdentityMap("         0      65534          1\n")).toBe(false);
  });

  test("--root by runc's rule: XDG_RUNTIME_DIR for a user and for rootless podman's root, not for root", () => {
    const env = { XDG_RUNTIME_DIR: "/run/user/1000", USER: "alice" };
    expect(defaultRoot(env, "user")).toBe("/run/user/1000/cc-oci-runtime");
    expect(defaultRoot(env, "namespace-root")).toBe("/run/user/1000/cc-oci-runtime");
    expect(defaultRoot({ ...env, USER: "root" }, "namespace-root")).toBe(DEFAULT_ROOT);
    expect(defaultRoot(env, "host-root")).toBe(DEFAULT_ROOT);
    expect(defaultRoot({}, "user")).toBe(DEFAULT_ROOT);
  });

  test("the share's 9p security model: passthrough for root (any namespace), none for a user", () => {
    expect(shareSecurityModel("host-root")).toBe("passthrough");
    expect(shareSecurityModel("namespace-root")).toBe("passthrough");
    expect(shareSecurityModel("user")).toBe("none");
  });

  test("user namespaces switched off: the switch that says so is named", () => {
    const files: Record<string, string> = { "/proc/sys/kernel/unprivileged_userns_clone": "0\n" };
    const read = (f: string) => {
      const v = files[f];
      if (v === undefined) throw new Error("ENOENT");
      return v;
    };
    expect(userNamespaceRefusal(read)).toMatch(/unprivileged_userns_clone is 0/);
    files["/proc/sys/kernel/unprivileged_userns_clone"] = "1\n";
    files["/proc/sys/user/max_user_namespaces"] = "0\n";
    expect(userNamespaceRefusal(read)).toMatch(/max_user_namespaces is 0/);
    files["/proc/sys/user/max_user_namespaces"] = "63000\n";
    expect(userNamespaceRefusal(read)).toBeUndefined();
  });
});
