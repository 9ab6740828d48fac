/**
 * Values fixed when the executable is built: `make` passes them with `bun build --define`
 * from what `./configure` wrote to config.mk. Running from source (tests) falls back to
 * the defaults of a `--prefix=/usr` build.
 */
declare const CC_BUILD_VERSION: string | undefined;
declare const CC_BUILD_COMMIT: string | undefined;
declare const CC_BUILD_SYSCONFDIR: string | undefined;
declare const CC_BUILD_DATADIR: string | undefined;

export const VERSION = typeof CC_BUILD_VERSION === "string" ? CC_BUILD_VERSION : "0.1.0";
export const COMMIT = typeof CC_BUILD_COMMIT === "string" ? CC_BUILD_COMMIT : "unknown";
export const SYSCONFDIR = typeof CC_BUILD_SYSCONFDIR === "string" ? CC_BUILD_SYSCONFDIR : "/etc";
export const DATADIR = typeof CC_BUILD_DATADIR === "string" ? CC_BUILD_DATADIR : "/usr/share";

/** The runtime-spec version this runtime implements. */
export const OCI_VERSION = "1.2.0";
export const NAME = "cc-oci-runtime";

/** Where configuration files are looked for, in order, after the bundle directory. */
export function configSearchDirs(): string[] {
  return [`${SYSCONFDIR}/${NAME}`, `${DATADIR}/defaults/${NAME}`];
}
