export async function runAgent(_argv: string[]): Promise<void> {
  throw new Error("agent: not implemented yet");
}
