// Placeholder until the doctor command lands.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('bulkhead doctor: not implemented yet\n');
  return 1;
}
