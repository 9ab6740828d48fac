/**
 * What the network files send and check, with nothing but busybox on both ends (the
 * container's image and Debian's busybox-static in the test's network namespace):
 * - a page served by `httpd` in the container, fetched with `wget` from the namespace's
 *   host side (by the container's address, or a published port) or from another container;
 * - 100 MiB through one TCP connection each way, by `nc` listeners the container starts
 *   with: host -> container on port 9000 (the container's sha256 of what it read comes back
 *   on the same connection), container -> host on port 9001 (the container sends random
 *   bytes and keeps their sha256 in /tmp/down.sha256). The FIFO between them is in /dev/shm:
 *   mkfifo on a VM's 9p rootfs fails (ENXIO), see the README's limits.
 */
import { createHash, randomBytes } from "node:crypto";
import { closeSync, openSync, writeSync } from "node:fs";
import type { DockerLikeCli } from "./cli.ts";
import type { Netns } from "./netns.ts";
import { type Cmd, waitFor } from "./proc.ts";
import type { Scenario } from "./scenario.ts";
import { BOOT_MS } from "./suite.ts";

/** Bytes sent each way through one connection. */
export const BIG = 100 << 20;
export const UP_PORT = 9000;
export const DOWN_PORT = 9001;
/** Where the container keeps the sha256 of what it sent (`HEX  -`). */
export const DOWN_SUM = "/tmp/down.sha256";

/**
 * The script of a container serving `page` (one word) on port 80, with the two `nc`
 * listeners; httpd becomes its main process.
 */
export function webScript(page: string): string {
  return [
    "mkdir -p /www",
    `echo ${page} > /www/index.html`,
    `nc -l -p ${UP_PORT} -e sha256sum &`,
    `nc -l -p ${DOWN_PORT} -e sh -c 'mkfifo /dev/shm/p; sha256sum < /dev/shm/p > ${DOWN_SUM} & head -c ${BIG} /dev/urandom | tee /dev/shm/p; wait' &`,
    "exec httpd -f -p 80 -h /www",
  ].join("\n");
}

/** `wget -O - URL` with busybox, from the namespace's host side (no `-T`: busybox 1.35's wget -T segfaults). */
export function fetch(netns: Netns, url: string, timeout = 30_000): Promise<Cmd> {
  return netns.run(["busybox", "wget", "-q", "-O", "-", url], { timeout });
}

/**
 * Polls `url` from the host side until it serves `page`; the last try is recorded as step
 * `key`. Called once the container runs (its httpd starts at once), so a minute is plenty
 * even for a VM under TCG. Returns whether it did.
 */
export async function waitPage(
  netns: Netns,
  s: Scenario,
  key: string,
  url: string,
  page: string,
  timeoutMs = 60_000,
): Promise<boolean> {
  return waitFor(
    `${url} to serve ${page}`,
    async () => {
      const r = await fetch(netns, url, 15_000);
      s.steps[key] = r;
      return r.code === 0 && r.stdout.trim() === page ? true : undefined;
    },
    timeoutMs,
    500,
  ).catch(() => false);
}

/** A regexp matching `v` literally (an address in `ip addr` output). */
export const literal = (v: unknown) => String(v).replace(/[.:[\]]/g, "\\$&");

/**
 * Docker's and podman's common checks of a web container at `ip` published with
 * `-p 8080:80`: steps "publishedLocal" and "publishedGateway" (from the host side, on
 * 127.0.0.1 and on the bridge's address `gw`), "peer" (another container: ping and wget by IP).
 */
export async function reachSteps(
  c: DockerLikeCli,
  netns: Netns,
  s: Scenario,
  ip: string,
  gw: string,
): Promise<void> {
  await s.step("publishedLocal", fetch(netns, "http://127.0.0.1:8080/"));
  await s.step("publishedGateway", fetch(netns, `http://${gw}:8080/`));
  const script = `ping -c 2 -W 10 ${ip} && timeout 20 wget -q -O - http://${ip}/`;
  await s.step("peer", c.cli([...c.run, "--rm", c.image, "sh", "-c", script], { timeout: BOOT_MS }));
}

export function checkPublished(s: Scenario, page: string): void {
  s.check("publishedLocal", { code: 0, stdout: `${page}\n` });
  s.check("publishedGateway", { code: 0, stdout: `${page}\n` });
}

export function checkPeer(s: Scenario, page: string): void {
  s.check("peer", { code: 0, stdout: new RegExp(`^${page}$`, "m") });
}

/** A file of BIG random bytes; returns its sha256 (hex). */
export function bigFile(path: string): string {
  const hash = createHash("sha256");
  const fd = openSync(path, "w");
  try {
    for (let left = BIG; left > 0; left -= 1 << 20) {
      const chunk = randomBytes(Math.min(left, 1 << 20));
      hash.update(chunk);
      writeSync(fd, chunk);
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

/** The hex digest at the start of sha256sum's output, or "". */
export function hexOf(out: string): string {
  return /^([0-9a-f]{64})\b/.exec(out.trim())?.[1] ?? "";
}

/**
 * Both 100 MiB transfers with the container at `ip` (its listeners from `webScript`):
 * steps "up" (host -> container, the container's sum as stdout) and "down" (container ->
 * host, the host's sum as stdout); `containerSum` reads the container's sum of what it
 * sent. Facts: upSent, upGot, downSent, downGot (hex digests).
 */
export async function transfers(
  netns: Netns,
  s: Scenario,
  ip: string,
  file: string,
  containerSum: () => Promise<Cmd>,
): Promise<void> {
  s.facts.upSent = bigFile(file);
  const host = ip.includes(":") ? `[${ip}]` : ip;
  const up = await s.step("up", netns.sh(`busybox nc ${host} ${UP_PORT} < ${file}`, { timeout: 300_000 }));
  s.facts.upGot = hexOf(up.stdout);
  const down = await s.step(
    "down",
    netns.sh(`busybox nc ${host} ${DOWN_PORT} < /dev/null | busybox sha256sum`, { timeout: 300_000 }),
  );
  s.facts.downGot = hexOf(down.stdout);
  // The container's sha256sum ends after its tee (the sender) does, and may not have
  // written its file when the host has read the last byte: a VM under TCG is slow to.
  let sent = await containerSum();
  for (let i = 0; i < 60 && sent.code !== 0; i++) {
    await Bun.sleep(500);
    sent = await containerSum();
  }
  s.steps.downSum = sent;
  s.facts.downSent = hexOf(sent.stdout);
}

/** What `transfers` recorded: each way, the bytes that arrived are the bytes sent. */
export function checkTransfers(s: Scenario): void {
  s.check("up", { code: 0 });
  const upSent = s.facts.upSent as string;
  s.fact<string>("upGot", (v) => v === upSent, `the sha256 of the 100 MiB sent (${upSent})`, "up");
  s.check("down", { code: 0 });
  s.check("downSum", { code: 0 });
  const downSent = s.fact<string>("downSent", (v) => v.length === 64, "the container's sha256", "downSum");
  s.fact<string>("downGot", (v) => v === downSent, `the container's sha256 (${downSent})`, "down");
}
