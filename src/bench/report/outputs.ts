/**
 * The one output layout of every benchmark (containers, lifecycle, VMM against QEMU, micro):
 * results.json, report.md and chart.svg in one directory, by default a new directory under the
 * system's temporary directory, never the source tree.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface WrittenReport {
  readonly dir: string;
  readonly resultsJson: string;
  readonly reportMd: string;
  readonly chartSvg: string;
}

export interface BenchOutputs {
  readonly results: unknown;
  readonly markdown: string;
  readonly svg: string;
}

export function writeBenchOutputs(dir: string, outputs: BenchOutputs): WrittenReport {
  fs.mkdirSync(dir, { recursive: true });
  const written = { dir, resultsJson: path.join(dir, 'results.json'), reportMd: path.join(dir, 'report.md'), chartSvg: path.join(dir, 'chart.svg') };
  fs.writeFileSync(written.resultsJson, JSON.stringify(outputs.results, null, 2) + '\n');
  fs.writeFileSync(written.reportMd, outputs.markdown);
  fs.writeFileSync(written.chartSvg, outputs.svg);
  return written;
}

/** A fresh `bulkhead-<name>-<time>` directory path under the temporary directory (not created). */
export function defaultOutDir(name: string): string {
  return path.join(os.tmpdir(), `bulkhead-${name}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
}
