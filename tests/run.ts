/**
 * Runs the test suite with bun's test runner and prints the one summary line CI reads:
 * `N passed, M failed, K skipped`, computed from the runner's JUnit report, not from
 * its console output. Exits non-zero on any failure, on a runner error, or on no tests.
 * Usage: bun run tests/run.ts [unit|vm|e2e ...]
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";

const groups = process.argv.slice(2);
const dirs = (groups.length ? groups : ["unit", "vm", "e2e"])
  .map((g) => `tests/${g}`)
  .filter((d) => existsSync(d));
const report = "build/test-results/junit.xml";
mkdirSync("build/test-results", { recursive: true });
rmSync(report, { force: true });

const child = Bun.spawn(
  [
    process.execPath,
    "test",
    "--timeout",
    "300000",
    "--reporter=junit",
    `--reporter-outfile=${report}`,
    ...dirs,
  ],
  { stdio: ["inherit", "inherit", "inherit"] },
);
const code = await child.exited;

let tests = 0;
let failures = 0;
let skipped = 0;
try {
  const xml = readFileSync(report, "utf8");
  const top = /<testsuites\b[^>]*>/.exec(xml)?.[0] ?? "";
  const attr = (name: string) => Number(new RegExp(`\\b${name}="(\\d+)"`).exec(top)?.[1] ?? 0);
  tests = attr("tests");
  failures = attr("failures");
  skipped = attr("skipped");
} catch {
  failures = 1;
}
// An error outside any test (a file that fails to load) fails the run without a failing test case.
if (code !== 0 && failures === 0) failures = 1;
const passed = tests - failures - skipped;
console.log(`${passed} passed, ${failures} failed, ${skipped} skipped`);
process.exit(failures > 0 || passed === 0 ? 1 : 0);
