/**
 * podman 4.3 as root drives cc-oci-runtime as `--runtime BIN` (lib/podman-matrix.ts).
 * Requires root; installs the managers when missing; boots 2 VMs at once.
 */
import { podmanMatrix } from "./lib/podman-matrix.ts";

podmanMatrix("podman", "podman --runtime cc-oci-runtime");
