/**
 * File I/O inside a container (issue 19): a busybox script times, on the container's rootfs
 * (a writable copy, which cc-oci-runtime shares over 9p) and on a tmpfs mounted in the
 * container (the guest's own memory for a VM), a 50 MB sequential write (fsync'd) and its
 * read back, the creation of 2000 small files, `ls -l` of them (a stat each), and a `tar x`
 * of 2000 files. Timed inside the container from /proc/uptime (10 ms steps), so that no
 * start or exec cost is in the figures; runc runs the same script on the host's kernel.
 * Ratios, round by round: the rootfs against the same VM's tmpfs (the goals: 2x for small
 * files and stat, 1.5x for sequential I/O), and against runc's rootfs.
 * cc-oci-runtime runs it three ways (config/writable-layer.ts): writes through the share (the
 * default), into a layer on the VM's disk, and into a layer in the guest's memory; a layer is
 * copied into the host's rootfs at the exit, so each run's whole time (`run`, from the host:
 * boot, script, copy, teardown) is measured too.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { WRITABLE_LAYER_ANNOTATION } from "../../src/config/writable-layer.ts";
import { makeBundle } from "../../tests/lib/bundle.ts";
import type { Contender } from "./contenders.ts";
import { type Ctx, rotate } from "./context.ts";

const S = "files";
export const FILE_OPS = ["write", "read", "create", "stat", "tarx"] as const;
type Op = (typeof FILE_OPS)[number];
const WHERE = ["rootfs", "tmpfs"] as const;
/** Files in the small-file figures (file-ops.sh). */
const FILES = 2000;

/** Each op's figure, ms, as `WHERE OP MS` lines (the operations: file-ops.sh, shared with share-modes.sh). */
const SCRIPT = `${readFileSync(join(import.meta.dir, "file-ops.sh"), "utf8")}
make_src_tar /scratch
measure /scratch tmpfs
measure /data rootfs
`;

function parse(out: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of out.trim().split("\n")) {
    const [where, op, ms] = line.split(" ");
    if (where && op && ms !== undefined && /^\d+$/.test(ms)) m.set(`${where}.${op}`, Number(ms));
  }
  return m;
}

const LABEL: Record<Op, string> = {
  write: "50 MB write + fsync",
  read: "50 MB read back",
  create: `create ${FILES} small files`,
  stat: `ls -l of ${FILES} files`,
  tarx: `tar x of ${FILES} files`,
};

/** cc-oci-runtime's ways of writing the rootfs: the key suffix, the annotation's value, a label. */
const LAYERS = [
  { suffix: "", layer: undefined, label: "" },
  { suffix: "-guest", layer: "guest", label: " (layer on the VM's disk)" },
  { suffix: "-memory", layer: "guest-memory", label: " (layer in the guest's memory)" },
] as const;

function fileBundle(layer: string | undefined): string {
  return makeBundle({
    args: ["sh", "-c", SCRIPT],
    writable: true,
    edit: (s) => {
      if (layer) s.annotations = { [WRITABLE_LAYER_ANNOTATION]: layer };
      (s.mounts as unknown[]).push({
        destination: "/scratch",
        type: "tmpfs",
        source: "tmpfs",
        options: ["size=200m"],
      });
    },
  });
}

export async function filesSection(ctx: Ctx, contenders: Contender[]): Promise<void> {
  const keyOf = (op: Op | "run", c: string, where: string) => `files.${op}.${c}.${where}`;
  const runs = contenders.flatMap((c) =>
    (c.key === "cc" ? LAYERS : LAYERS.slice(0, 1)).map((l) => ({
      c,
      key: `${c.key}${l.suffix}`,
      name: `${c.name}${l.label}`,
      bundle: fileBundle(l.layer),
    })),
  );
  for (let round = 0; round < ctx.runs && !ctx.stopped(); round++) {
    for (const { c, key, name, bundle } of rotate(runs, round)) {
      const id = `files${round}`;
      c.created.add(id);
      const t0 = performance.now();
      const r = await c.call(["run", "--bundle", bundle, id], 600_000);
      const wholeMs = performance.now() - t0;
      c.created.delete(id);
      if (r.code !== 0) throw new Error(`${name}: the file script failed (${r.code}): ${r.stderr.trim()}`);
      const got = parse(r.stdout);
      for (const op of FILE_OPS) {
        for (const where of WHERE) {
          const label = `${LABEL[op]}, ${where === "rootfs" ? "rootfs" : "a tmpfs in the container"}: ${name}`;
          ctx.results.add(S, keyOf(op, key, where), label, "ms", round, got.get(`${where}.${op}`));
        }
      }
      ctx.results.add(
        S,
        keyOf("run", key, "all"),
        `the whole run (from the host): ${name}`,
        "ms",
        round,
        wholeMs,
      );
      ctx.log(`files round ${round}: ${name} done`);
    }
  }
  for (const op of FILE_OPS) {
    const goal = op === "write" || op === "read" ? "1.5x" : "2x";
    for (const l of LAYERS) {
      ctx.results.ratio(
        S,
        keyOf(op, `cc${l.suffix}`, "rootfs"),
        keyOf(op, `cc${l.suffix}`, "tmpfs"),
        `${LABEL[op]}: the rootfs / the same VM's tmpfs${l.label} (goal ${goal})`,
      );
    }
    ctx.results.ratio(
      S,
      keyOf(op, "cc", "rootfs"),
      keyOf(op, "runc", "rootfs"),
      `${LABEL[op]}: rootfs, cc / runc`,
    );
  }
  for (const l of LAYERS.slice(1))
    ctx.results.ratio(
      S,
      keyOf("run", `cc${l.suffix}`, "all"),
      keyOf("run", "cc", "all"),
      `the whole run${l.label} / through the share`,
    );
}
