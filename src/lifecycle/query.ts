import { basename, dirname } from "node:path";
import type { SpecState, Status, StoredState } from "../state/schema.ts";
import type { StateStore } from "../state/store.ts";
import { isAlive, memoryKiB } from "../sys/proc.ts";

/**
 * The status a container really has now: a container whose stand-in is gone (the
 * workload exited, or someone killed it) is stopped whatever the file last said. One
 * being created is `creating` while its create process or its stand-in lives; once both
 * are gone (create killed) it is a stopped container that `delete` removes.
 */
export function liveStatus(s: StoredState): Status {
  if (s.status === "stopped") return "stopped";
  if (s.status === "creating") return isAlive(s.creator) || isAlive(s.standin) ? "creating" : "stopped";
  if (!isAlive(s.standin)) return "stopped";
  return s.status;
}

export function toSpecState(s: StoredState): SpecState {
  const status = liveStatus(s);
  return {
    ociVersion: s.ociVersion,
    id: s.id,
    status,
    pid: status === "stopped" || !isAlive(s.standin) ? 0 : (s.standin?.pid ?? 0),
    bundle: s.bundle,
    rootfs: s.rootfs,
    created: s.created,
    annotations: { ...s.annotations, ...vmAnnotations(s) },
    owner: s.owner,
  };
}

/** The VM's real size, for whoever reads the state (hooks, managers): what it was given. */
export const VM_ANNOTATIONS = {
  vcpus: "io.cc-oci-runtime.vm.vcpus",
  memory: "io.cc-oci-runtime.vm.memory-mib",
};

function vmAnnotations(s: StoredState): Record<string, string> {
  const out: Record<string, string> = {};
  if (s.vm?.vcpus) out[VM_ANNOTATIONS.vcpus] = String(s.vm.vcpus);
  if (s.vm?.memoryMiB) out[VM_ANNOTATIONS.memory] = String(s.vm.memoryMiB);
  return out;
}

export function specState(store: StateStore, id: string): SpecState {
  return toSpecState(store.read(id));
}

export interface ListRow extends SpecState {
  vm?: {
    hypervisor: string;
    hypervisorPid: number;
    kernel: string;
    image: string;
    vcpus?: number;
    memoryMiB?: number;
    rssKiB?: number;
    /** Proportional: the template's pages it shares count once, split between its clones. */
    pssKiB?: number;
    template?: string;
  };
}

export function listContainers(store: StateStore): ListRow[] {
  const rows: ListRow[] = [];
  for (const id of store.list()) {
    const s = store.tryRead(id);
    if (!s) continue;
    const row: ListRow = toSpecState(s);
    if (s.vm) {
      const qemuAlive = isAlive(s.vm.qemu);
      const mem = qemuAlive && s.vm.qemu ? memoryKiB(s.vm.qemu.pid) : undefined;
      row.vm = {
        hypervisor: s.vm.hypervisor,
        hypervisorPid: qemuAlive ? (s.vm.qemu?.pid ?? 0) : 0,
        kernel: s.vm.kernel,
        image: s.vm.image,
        vcpus: s.vm.vcpus,
        memoryMiB: s.vm.memoryMiB,
        rssKiB: mem?.rss,
        pssKiB: mem?.pss,
        template: s.vm.template,
      };
    }
    rows.push(row);
  }
  return rows;
}

interface ListFormat {
  format: "table" | "json";
  quiet: boolean;
  all: boolean;
}

export function formatList(rows: ListRow[], f: ListFormat): string {
  if (f.quiet) return rows.map((r) => r.id).join("\n");
  if (f.format === "json") {
    return JSON.stringify(
      rows.map(({ vm, ...spec }) => (f.all ? { ...spec, vm: vm ?? null } : spec)),
      null,
      f.all ? 2 : undefined,
    );
  }
  const header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"];
  if (f.all)
    header.push("HYPERVISOR", "QEMU PID", "VCPUS", "MEMORY", "RSS", "PSS", "TEMPLATE", "KERNEL", "IMAGE");
  const table = rows.map((r) => {
    const cells = [r.id, String(r.pid), r.status, r.bundle, r.created, r.owner];
    if (f.all) {
      const v = r.vm;
      cells.push(
        v?.hypervisor ?? "-",
        String(v?.hypervisorPid ?? 0),
        String(v?.vcpus ?? "-"),
        v?.memoryMiB ? `${v.memoryMiB}MiB` : "-",
        v?.rssKiB ? `${Math.round(v.rssKiB / 1024)}MiB` : "-",
        v?.pssKiB ? `${Math.round(v.pssKiB / 1024)}MiB` : "-",
        v?.template ? basename(dirname(v.template)) : "-",
        v?.kernel ?? "-",
        v?.image ?? "-",
      );
    }
    return cells;
  });
  return tabulate([header, ...table]);
}

/** Go's tabwriter as runc sets it up: minimum width 12, padding 3, spaces. */
export function tabulate(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length + 3, 12);
    });
  }
  return rows
    .map((row) =>
      row
        .map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? 12)))
        .join("")
        .trimEnd(),
    )
    .join("\n");
}
