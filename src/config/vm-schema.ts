import { z } from "zod";

/**
 * The `vm` object, in the two shapes found in the wild:
 * - legacy (the seed's, Clear Containers 2.0): {"path","image","kernel":{"path","parameters":"a b"}}
 * - runtime-spec config-vm: {"hypervisor":{"path","parameters":[]},
 *   "kernel":{"path","parameters":[],"initrd"},"image":{"path","format"}}
 * Both are normalised into VmConfig. Unknown fields are kept (and ignored).
 */
/** config/writable-layer.ts */
export const WRITABLE_LAYERS = ["share", "guest", "guest-memory"] as const;

const nonEmpty = z.string().min(1, "expected a non-empty string");

/** This runtime's own settings, accepted in both shapes. */
const Extensions = {
  /** "auto" (probe), "kvm" or "tcg". */
  accelerator: z.enum(["auto", "kvm", "tcg"]).optional(),
  /** Start VMs from a snapshot of a booted template guest (see hypervisor/template.ts). */
  template: z.boolean().optional(),
  /** How many network cards every VM boots with (hypervisor/nics.ts); default 1. */
  networkInterfaces: z.number().int().min(0).max(8).optional(),
  /** vCPUs of a VM whose container sets no CPU limit (default 1). */
  vcpus: z.number().int().min(1).max(255).optional(),
  /** Memory (MiB) of a VM whose container sets no memory limit, and the least any VM gets (default 256). */
  memory: z.number().int().min(128).optional(),
  /**
   * Where a container's writes to its rootfs go while it runs: "share" (default: through the
   * 9p share, on the host at once), "guest" (a layer on a disk of the VM's own) or
   * "guest-memory" (a layer in the guest's memory), either copied to the host's rootfs when
   * the container's init exits (config/writable-layer.ts).
   */
  writableLayer: z.enum(WRITABLE_LAYERS).optional(),
};

const LegacyVm = z.looseObject({
  ...Extensions,
  path: nonEmpty.optional(),
  image: nonEmpty,
  kernel: z.looseObject({
    path: nonEmpty,
    parameters: z.union([z.string(), z.array(z.string())]).optional(),
    initrd: nonEmpty.optional(),
  }),
});

const SpecVm = z.looseObject({
  ...Extensions,
  hypervisor: z
    .looseObject({
      path: nonEmpty,
      parameters: z.array(z.string()).optional(),
    })
    .optional(),
  kernel: z.looseObject({
    path: nonEmpty,
    parameters: z.union([z.array(z.string()), z.string()]).optional(),
    initrd: nonEmpty.optional(),
  }),
  image: z
    .looseObject({
      path: nonEmpty,
      format: z.string().optional(),
    })
    .optional(),
});

export interface VmConfig {
  hypervisorPath?: string;
  hypervisorParameters: string[];
  kernelPath: string;
  kernelParameters: string[];
  initrd?: string;
  imagePath?: string;
  imageFormat?: string;
  accelerator?: "auto" | "kvm" | "tcg";
  template?: boolean;
  networkInterfaces?: number;
  vcpus?: number;
  memoryMiB?: number;
  writableLayer?: (typeof WRITABLE_LAYERS)[number];
}

function splitParams(p: string | string[] | undefined): string[] {
  if (p === undefined) return [];
  return Array.isArray(p) ? p : p.split(/\s+/).filter(Boolean);
}

/** Picks the shape by its `image` field: a string is legacy, an object (or absent) is runtime-spec. */
export const VmSchema = z.unknown().transform((raw, ctx): VmConfig => {
  const legacy =
    typeof raw === "object" && raw !== null && typeof (raw as { image?: unknown }).image === "string";
  const parsed = (legacy ? LegacyVm : SpecVm).safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues)
      ctx.addIssue({ ...issue, code: "custom", message: issue.message });
    return z.NEVER;
  }
  if (legacy) {
    const v = parsed.data as z.infer<typeof LegacyVm>;
    return {
      hypervisorPath: v.path,
      hypervisorParameters: [],
      kernelPath: v.kernel.path,
      kernelParameters: splitParams(v.kernel.parameters),
      initrd: v.kernel.initrd,
      imagePath: v.image,
      accelerator: v.accelerator,
      template: v.template,
      networkInterfaces: v.networkInterfaces,
      vcpus: v.vcpus,
      memoryMiB: v.memory,
      writableLayer: v.writableLayer,
    };
  }
  const v = parsed.data as z.infer<typeof SpecVm>;
  return {
    hypervisorPath: v.hypervisor?.path,
    hypervisorParameters: v.hypervisor?.parameters ?? [],
    kernelPath: v.kernel.path,
    kernelParameters: splitParams(v.kernel.parameters),
    initrd: v.kernel.initrd,
    imagePath: v.image?.path,
    imageFormat: v.image?.format,
    accelerator: v.accelerator,
    template: v.template,
    networkInterfaces: v.networkInterfaces,
    vcpus: v.vcpus,
    memoryMiB: v.memory,
    writableLayer: v.writableLayer,
  };
});
