/**
 * The report a container without a pid namespace prints about its guest (bench/guest.ts):
 * the agent's status, /proc/meminfo, every guest process's status and dmesg, in
 * "== section" blocks, then it execs `sleep 1000`.
 */

export const GUEST_REPORT = [
  "sleep 2",
  'echo "== cmdline 1"; tr "\\0" " " </proc/1/cmdline; echo',
  'echo "== meminfo"; cat /proc/meminfo',
  'cd /proc; for d in [0-9]*; do echo "== proc $d"; cat "$d/status" 2>/dev/null; done; cd /',
  'echo "== dmesg"; dmesg 2>&1',
  'echo "== end"',
  "exec sleep 1000",
].join("\n");

type KiBFields = Record<string, number>;

function kibFields(lines: string[]): KiBFields {
  const out: KiBFields = {};
  for (const l of lines) {
    const m = /^(\w+(?:\(\w+\))?):\s+(\d+)(?: kB)?$/.exec(l.trim());
    if (m?.[1] && m[2]) out[m[1]] = Number(m[2]);
  }
  return out;
}

/** Splits the guest report ("== section" headers) into its parts. */
export function parseGuestReport(text: string) {
  const sections = new Map<string, string[]>();
  let cur: string[] | undefined;
  for (const line of text.split("\n")) {
    const h = /^== (.+)$/.exec(line);
    if (h?.[1]) {
      cur = [];
      sections.set(h[1], cur);
    } else cur?.push(line);
  }
  const agentLines = sections.get("proc 1") ?? [];
  const processes: { pid: number; name: string; rssKiB: number }[] = [];
  for (const [name, lines] of sections) {
    const m = /^proc (\d+)$/.exec(name);
    if (!m) continue;
    const comm = lines.find((l) => l.startsWith("Name:"))?.split(/\s+/)[1] ?? "?";
    processes.push({ pid: Number(m[1]), name: comm, rssKiB: kibFields(lines).VmRSS ?? 0 });
  }
  const dmesg = sections.get("dmesg") ?? [];
  const initLine = dmesg.find((l) => /Run \/init as init process/.test(l));
  const ts = initLine ? /^\[\s*(\d+\.\d+)\]/.exec(initLine)?.[1] : undefined;
  return {
    agent: kibFields(agentLines),
    agentCmdline: (sections.get("cmdline 1") ?? []).join(" ").trim(),
    meminfo: kibFields(sections.get("meminfo") ?? []),
    processes,
    kernelToInitMs: ts ? Number(ts) * 1000 : undefined,
    dmesgInit: initLine,
  };
}
