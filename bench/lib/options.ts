/** Command-line options of bench/run.ts. */

export const SECTIONS = ["start", "cli", "network", "memory", "density", "files"] as const;
export type Section = (typeof SECTIONS)[number];
export const RUNTIMES = ["cc", "runc", "crun", "floor"] as const;
export type RuntimeKey = (typeof RUNTIMES)[number];

export interface Options {
  runs: number;
  only: Section[];
  runtimes: RuntimeKey[];
  /** auto: measured in `start`, kept for the other sections only if it made a difference. */
  template: "auto" | "on" | "off";
  maxDensity: number;
  densityBudgetS: number;
  memContainers: number;
  memRuns: number;
  cliCalls: number;
  install: boolean;
}

export const USAGE = `usage: bun run bench/run.ts [options]
  --runs N              rounds per figure (default 5)
  --only LIST           sections, comma-separated: ${SECTIONS.join(",")} (default all)
  --runtimes LIST       compared: ${RUNTIMES.join(",")} (default all; floor = bare QEMU boot)
  --template MODE       cc-oci-runtime with CC_OCI_TEMPLATE=1 as well: auto (default: measured
                        in start, kept in the other sections if it changes start latency), on, off
  --max-density N       bound of the density ramp (default 50 idle containers)
  --density-budget S    time bound of one density ramp, seconds (default 600)
  --mem-containers N    containers at once for the memory figure (default 10)
  --mem-runs N          rounds of the memory section (default 3: ~1 min of VM boots each,
                        and PSS varies by < 1 % from round to round)
  --cli-calls K         calls per command per round, their median is the round's (default 5)
  --no-install          do not apt-get install a missing runc/crun`;

function int(name: string, v: string | undefined, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}: expected an integer >= ${min}, got ${v}`);
  return n;
}

function list<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T[] {
  const items = (v ?? "").split(",").filter(Boolean);
  for (const i of items)
    if (!allowed.includes(i as T)) throw new Error(`${name}: unknown ${i} (expected ${allowed.join(",")})`);
  if (!items.length) throw new Error(`${name}: empty list`);
  return items as T[];
}

export function parseOptions(argv: string[]): Options {
  const o: Options = {
    runs: 5,
    only: [...SECTIONS],
    runtimes: [...RUNTIMES],
    template: "auto",
    maxDensity: 50,
    densityBudgetS: 600,
    memContainers: 10,
    memRuns: 0,
    cliCalls: 5,
    install: true,
  };
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k] ?? "";
    const eq = a.indexOf("=");
    const name = eq > 0 ? a.slice(0, eq) : a;
    const value = () => (eq > 0 ? a.slice(eq + 1) : argv[++k]);
    switch (name) {
      case "--runs":
        o.runs = int(name, value(), 1);
        break;
      case "--only":
        o.only = list(name, value(), SECTIONS);
        break;
      case "--runtimes":
        o.runtimes = list(name, value(), RUNTIMES);
        break;
      case "--template": {
        const v = value();
        if (v !== "auto" && v !== "on" && v !== "off")
          throw new Error(`--template: auto, on or off, not ${v}`);
        o.template = v;
        break;
      }
      case "--max-density":
        o.maxDensity = int(name, value(), 1);
        break;
      case "--density-budget":
        o.densityBudgetS = int(name, value(), 10);
        break;
      case "--mem-containers":
        o.memContainers = int(name, value(), 2);
        break;
      case "--mem-runs":
        o.memRuns = int(name, value(), 1);
        break;
      case "--cli-calls":
        o.cliCalls = int(name, value(), 1);
        break;
      case "--no-install":
        o.install = false;
        break;
      case "-h":
      case "--help":
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${a}\n${USAGE}`);
    }
  }
  // Unless given: 3, or fewer when --runs is smaller.
  if (!argv.some((a) => a.startsWith("--mem-runs"))) o.memRuns = Math.min(3, o.runs);
  return o;
}
