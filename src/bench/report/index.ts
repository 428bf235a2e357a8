/** Writes a container run's results.json, report.md and chart.svg into one directory. */
import type { BenchResults } from '../method/results';
import { renderMarkdown } from './markdown';
import { writeBenchOutputs, type WrittenReport } from './outputs';
import { renderSvg } from './svg';

export { renderMarkdown, renderSvg, type WrittenReport };

export function writeReport(results: BenchResults, dir: string): WrittenReport {
  return writeBenchOutputs(dir, { results, markdown: renderMarkdown(results), svg: renderSvg(results) });
}
