/**
 * The one executable has three roles, chosen by a hidden first argument:
 *   (none)       the runc-compatible CLI, called by people and container managers
 *   __standin    the per-container host process named in --pid-file (src/standin/)
 *   __agent      the agent inside the guest VM, run as its init (src/agent/)
 *   __netclean   take a dead stand-in's tc redirects off a network namespace (standin/network-record.ts)
 * Each role is imported lazily so that none pays for the others' start-up.
 */
async function main(argv: string[]): Promise<void> {
  const role = argv[0];
  if (role === "__agent") {
    const { runAgent } = await import("./agent/main.ts");
    await runAgent(argv.slice(1));
  } else if (role === "__netclean") {
    const { netcleanRole } = await import("./standin/network-record.ts");
    process.exitCode = netcleanRole(argv.slice(1));
  } else if (role === "__standin") {
    const { runStandin } = await import("./standin/main.ts");
    // Exit now: relays still open (a terminal, the hub) must not keep the stand-in alive.
    process.exit(await runStandin(argv.slice(1)));
  } else {
    const { runCli } = await import("./cli/program.ts");
    process.exitCode = await runCli(argv);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`cc-oci-runtime: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
