// Placeholder until the host command lands.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('bulkhead host: not implemented yet\n');
  return 1;
}
