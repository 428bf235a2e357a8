// Placeholder until the bench command lands.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('bulkhead bench: not implemented yet\n');
  return 1;
}
