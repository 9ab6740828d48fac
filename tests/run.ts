/**
 * Runs the test suite with bun's test runner and prints the one summary line CI reads:
 * `N passed, M failed, K skipped`, computed from the runner's JUnit report, not from
 * its console output. Exits non-zero on any failure, on a runner error, or on no tests.
 * Usage: bun run tests/run.ts [unit|vm|e2e ...]
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { ownedRoots } from "./lib/runtime.ts";

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
  printWhy(xml);
} catch {
  failures = 1;
}
// An error outside any test (a file that fails to load) fails the run without a failing test case.
if (code !== 0 && failures === 0) failures = 1;
// Every file removes its test roots (templates are ~150 MB each); bun runs files in an order
// of its own, so no test file can be the last to look: this is.
const left = ownedRoots(child.pid);
if (left.length) {
  console.log(`why: test roots left behind by the tests: ${left.join(" ")}`);
  failures++;
  tests++;
}
const passed = tests - failures - skipped;
console.log(`${passed} passed, ${failures} failed, ${skipped} skipped`);
process.exit(failures > 0 || passed === 0 ? 1 : 0);

/**
 * Each failed test with its failure on one line, just above the summary: a CI log is often
 * read from its tail only, where the runner's own report says which tests failed, not why.
 */
function printWhy(xml: string): void {
  const MAX_CHARS = 600;
  const cases = xml.matchAll(/<testcase\b([^>]*)>\s*<failure\b[^>]*\bmessage="([^"]*)"/g);
  for (const [, attrs = "", message = ""] of cases) {
    const get = (name: string) => decode(new RegExp(`\\b${name}="([^"]*)"`).exec(attrs)?.[1] ?? "");
    const why = decode(message).replace(/\s+/g, " ").trim();
    console.log(
      `why: ${get("file")}:${get("line")} ${get("name")}: ${why.length > MAX_CHARS ? `${why.slice(0, MAX_CHARS)}...` : why}`,
    );
  }
}

function decode(text: string): string {
  return text.replace(/&(#\d+|quot|amp|lt|gt|apos);/g, (_, e: string) =>
    e.startsWith("#")
      ? String.fromCharCode(Number(e.slice(1)))
      : (({ quot: '"', amp: "&", lt: "<", gt: ">", apos: "'" } as Record<string, string>)[e] ?? e),
  );
}
