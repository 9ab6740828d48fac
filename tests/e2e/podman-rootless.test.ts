/**
 * Rootless podman (issue: non-root): the test's unprivileged user runs podman 4.3 with
 * `--runtime BIN`, in podman's own user namespace (the user's ids and its /etc/subuid
 * range) with its storage and XDG_RUNTIME_DIR in the workspace. conmon starts the runtime
 * as root of that user namespace: the rootfs podman mounted there is shared with the VM as
 * root would share it, there is no host cgroup, and the runtime's root is under
 * XDG_RUNTIME_DIR. Same matrix as root's podman (lib/podman-matrix.ts). Boots 2 VMs.
 */

import { subordinateIds, testUser } from "../lib/user.ts";
import { podmanMatrix } from "./lib/podman-matrix.ts";

podmanMatrix("podman-rootless", "rootless podman --runtime cc-oci-runtime", () => subordinateIds(testUser()));
