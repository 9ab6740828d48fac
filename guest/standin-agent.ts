// A stand-in for bin/cc-oci-runtime's agent role, to test and time the guest image whatever
// state the real agent is in: guest/smoke-boot.sh compiles it (`bun build --compile`) into
// build/guest/smoke/ and boots an image holding it as /usr/bin/cc-oci-runtime.
// Prints AGENT-READY, the kernel release, its argv and the mount table; as PID 1 it then
// powers the VM off through busybox.
import { readFileSync } from "node:fs";
import { release } from "node:os";

const t0 = performance.now();
console.log(`AGENT-READY pid=${process.pid} argv=${JSON.stringify(process.argv.slice(1))}`);
console.log(`uname -r: ${release()}`);
try {
  console.log(readFileSync("/proc/mounts", "utf8").trimEnd());
} catch (e) {
  console.log(`cannot read /proc/mounts: ${e}`);
}
console.log(`AGENT-DONE in ${(performance.now() - t0).toFixed(0)} ms`);
if (process.pid === 1) {
  Bun.spawnSync(["/bin/busybox", "poweroff", "-f"], { stdio: ["inherit", "inherit", "inherit"] });
}
