/**
 * File I/O inside a container (issue 19): a busybox script times, on the container's rootfs
 * (a writable copy, which cc-oci-runtime shares over 9p) and on a tmpfs mounted in the
 * container (the guest's own memory for a VM), a 50 MB sequential write (fsync'd) and its
 * read back, the creation of 2000 small files, `ls -l` of them (a stat each), and a `tar x`
 * of 2000 files. Timed inside the container from /proc/uptime (10 ms steps), so that no
 * start or exec cost is in the figures; runc runs the same script on the host's kernel.
 * Ratios, round by round: the rootfs against the same VM's tmpfs (the goals: 2x for small
 * files and stat, 1.5x for sequential I/O), and against runc's rootfs.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
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

export async function filesSection(ctx: Ctx, contenders: Contender[]): Promise<void> {
  const bundle = makeBundle({
    args: ["sh", "-c", SCRIPT],
    writable: true,
    edit: (s) => {
      (s.mounts as unknown[]).push({
        destination: "/scratch",
        type: "tmpfs",
        source: "tmpfs",
        options: ["size=200m"],
      });
    },
  });
  const keyOf = (op: Op, c: string, where: string) => `files.${op}.${c}.${where}`;
  for (let round = 0; round < ctx.runs && !ctx.stopped(); round++) {
    for (const c of rotate(contenders, round)) {
      const id = `files${round}`;
      c.created.add(id);
      const r = await c.call(["run", "--bundle", bundle, id], 600_000);
      c.created.delete(id);
      if (r.code !== 0) throw new Error(`${c.name}: the file script failed (${r.code}): ${r.stderr.trim()}`);
      const got = parse(r.stdout);
      for (const op of FILE_OPS) {
        for (const where of WHERE) {
          const label = `${LABEL[op]}, ${where === "rootfs" ? "rootfs" : "a tmpfs in the container"}: ${c.name}`;
          ctx.results.add(S, keyOf(op, c.key, where), label, "ms", round, got.get(`${where}.${op}`));
        }
      }
      ctx.log(`files round ${round}: ${c.name} done`);
    }
  }
  for (const op of FILE_OPS) {
    const goal = op === "write" || op === "read" ? "1.5x" : "2x";
    ctx.results.ratio(
      S,
      keyOf(op, "cc", "rootfs"),
      keyOf(op, "cc", "tmpfs"),
      `${LABEL[op]}: the rootfs / the same VM's tmpfs (goal ${goal})`,
    );
    ctx.results.ratio(
      S,
      keyOf(op, "cc", "rootfs"),
      keyOf(op, "runc", "rootfs"),
      `${LABEL[op]}: rootfs, cc / runc`,
    );
  }
}
