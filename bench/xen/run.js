#!/usr/bin/env node
// The Xen benchmark's entry: src/bench/xen/run.ts (built into dist/cjs/bench/xen/run.js) does the work.
//   npm run build && node bench/xen/run.js [--runs N] [--warmups N] [--out DIR] [--json] [--kernels generic,xen]
'use strict';
const path = require('node:path');
const { parseArgs, runXenBench } = require(path.join(__dirname, '..', '..', 'dist', 'cjs', 'bench', 'xen', 'run.js'));

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`${e.message}\n`);
  process.exit(2);
}
runXenBench(opts).catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
