/**
 * A busybox image without any registry, from Debian's busybox-static: a rootfs tarball (for
 * `docker import`) and one OCI layout tarball that also carries a docker-archive
 * `manifest.json`, so `ctr images import`, `podman load` and `docker load` all take it.
 */
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { must } from "./proc.ts";

/** The name every manager knows the image by (containerd needs a full reference). */
export const IMAGE = "localhost/cc-e2e-busybox:latest";

/** Another name, or other defaults for the process (`Entrypoint`, `Cmd`), of the same rootfs. */
export interface ImageOptions {
  name?: string;
  entrypoint?: string[];
  cmd?: string[];
}

export interface BuiltImage {
  /** A plain rootfs tarball. */
  rootfsTar: string;
  /** An OCI layout tarball with a docker-archive manifest.json beside index.json. */
  ociTar: string;
}

const TAR = ["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner"];

function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

export async function buildImage(dir: string, opts: ImageOptions = {}): Promise<BuiltImage> {
  const name = opts.name ?? IMAGE;
  const rootfs = join(dir, "rootfs");
  for (const d of ["bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/user", "data"]) {
    mkdirSync(join(rootfs, d), { recursive: true });
  }
  chmodSync(join(rootfs, "tmp"), 0o1777);
  copyFileSync("/bin/busybox", join(rootfs, "bin/busybox"));
  chmodSync(join(rootfs, "bin/busybox"), 0o755);
  const applets = (await must(["/bin/busybox", "--list"])).stdout.trim().split("\n");
  for (const a of applets) if (a !== "busybox") symlinkSync("busybox", join(rootfs, "bin", a));
  writeFileSync(
    join(rootfs, "etc/passwd"),
    "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
  );
  writeFileSync(join(rootfs, "etc/group"), "root:x:0:\nuser:x:1000:\n");

  const rootfsTar = join(dir, "rootfs.tar");
  await must([...TAR, "-C", rootfs, "-cf", rootfsTar, "."]);

  const layout = join(dir, "oci");
  const blobs = join(layout, "blobs/sha256");
  mkdirSync(blobs, { recursive: true });
  const blob = (data: Uint8Array | string) => {
    const hex = sha256(data);
    writeFileSync(join(blobs, hex), data);
    return {
      hex,
      digest: `sha256:${hex}`,
      size: typeof data === "string" ? Buffer.byteLength(data) : data.length,
    };
  };
  const layer = blob(new Uint8Array(readFileSync(rootfsTar)));
  const config = blob(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      created: "1970-01-01T00:00:00Z",
      config: {
        Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        ...(opts.entrypoint ? { Entrypoint: opts.entrypoint } : {}),
        Cmd: opts.cmd ?? (opts.entrypoint ? [] : ["sh"]),
      },
      rootfs: { type: "layers", diff_ids: [layer.digest] },
      history: [{ created: "1970-01-01T00:00:00Z", created_by: "cc-oci-runtime e2e: busybox-static" }],
    }),
  );
  const manifest = blob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: config.digest,
        size: config.size,
      },
      layers: [
        { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layer.digest, size: layer.size },
      ],
    }),
  );
  writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(
    join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest: manifest.digest,
          size: manifest.size,
          annotations: { "io.containerd.image.name": name, "org.opencontainers.image.ref.name": name },
        },
      ],
    }),
  );
  writeFileSync(
    join(layout, "manifest.json"),
    JSON.stringify([
      {
        Config: `blobs/sha256/${config.hex}`,
        RepoTags: [name],
        Layers: [`blobs/sha256/${layer.hex}`],
      },
    ]),
  );
  const ociTar = join(dir, "busybox-oci.tar");
  await must([...TAR, "-C", layout, "-cf", ociTar, "."]);
  return { rootfsTar, ociTar };
}
