/** Writes a run's results.json, report.md and chart.svg into one directory. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BenchResults } from '../method/results';
import { renderMarkdown } from './markdown';
import { renderSvg } from './svg';

export { renderMarkdown, renderSvg };

export interface WrittenReport {
  readonly dir: string;
  readonly resultsJson: string;
  readonly reportMd: string;
  readonly chartSvg: string;
}

export function writeReport(results: BenchResults, dir: string): WrittenReport {
  fs.mkdirSync(dir, { recursive: true });
  const written = {
    dir,
    resultsJson: path.join(dir, 'results.json'),
    reportMd: path.join(dir, 'report.md'),
    chartSvg: path.join(dir, 'chart.svg'),
  };
  fs.writeFileSync(written.resultsJson, JSON.stringify(results, null, 2) + '\n');
  fs.writeFileSync(written.reportMd, renderMarkdown(results));
  fs.writeFileSync(written.chartSvg, renderSvg(results));
  return written;
}
