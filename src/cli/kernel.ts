// Placeholder until the kernel command lands.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('bulkhead kernel: not implemented yet\n');
  return 1;
}
