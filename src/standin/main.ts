export async function runStandin(_argv: string[]): Promise<number> {
  process.stderr.write("standin: not implemented yet\n");
  return 1;
}
