import { z } from "zod";

/**
 * The parts of an OCI runtime-spec config.json that this runtime reads. Objects are
 * loose: unknown fields (extensions, newer spec fields) are kept and passed on to the
 * runtime inside the guest untouched.
 */
const Hook = z.looseObject({
  path: z.string().min(1),
  args: z.array(z.string()).optional(),
  env: z.array(z.string()).optional(),
  timeout: z.number().int().positive().optional(),
});
export type Hook = z.infer<typeof Hook>;

export const HOOK_KINDS = [
  "prestart",
  "createRuntime",
  "createContainer",
  "startContainer",
  "poststart",
  "poststop",
] as const;
export type HookKind = (typeof HOOK_KINDS)[number];

const Hooks = z.looseObject(
  Object.fromEntries(HOOK_KINDS.map((k) => [k, z.array(Hook).optional()])),
) as z.ZodType<Partial<Record<HookKind, Hook[]>>>;

const Rlimit = z.looseObject({ type: z.string(), hard: z.number(), soft: z.number() });

export const User = z.looseObject({
  uid: z.number().int().nonnegative(),
  gid: z.number().int().nonnegative(),
  umask: z.number().int().nonnegative().optional(),
  additionalGids: z.array(z.number().int().nonnegative()).optional(),
  username: z.string().optional(),
});

const ConsoleSize = z.looseObject({ height: z.number().int(), width: z.number().int() });

export const Process = z.looseObject({
  terminal: z.boolean().optional(),
  consoleSize: ConsoleSize.optional(),
  user: User,
  args: z.array(z.string()).min(1, "expected at least one argument"),
  env: z.array(z.string()).optional(),
  cwd: z.string().startsWith("/", "expected an absolute path"),
  capabilities: z.looseObject({}).optional(),
  rlimits: z.array(Rlimit).optional(),
  noNewPrivileges: z.boolean().optional(),
  apparmorProfile: z.string().optional(),
  selinuxLabel: z.string().optional(),
});
export type Process = z.infer<typeof Process>;

const Mount = z.looseObject({
  destination: z.string().min(1),
  type: z.string().optional(),
  source: z.string().optional(),
  options: z.array(z.string()).optional(),
});
export type Mount = z.infer<typeof Mount>;

export const OciConfig = z.looseObject({
  ociVersion: z.string(),
  process: Process.optional(),
  root: z.looseObject({ path: z.string().min(1), readonly: z.boolean().optional() }),
  hostname: z.string().optional(),
  mounts: z.array(Mount).optional(),
  hooks: Hooks.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  linux: z.looseObject({}).optional(),
  vm: z.unknown().optional(),
});
export type OciConfig = z.infer<typeof OciConfig>;
