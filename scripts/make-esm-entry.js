#!/usr/bin/env node
// Writes dist/esm/index.mjs (+ .d.mts): an ES-module facade over the CommonJS build.
// One implementation, so an ESM and a CJS consumer in the same process share the same classes
// (instanceof on errors keeps working); the export list is read from the built CJS module.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const cjsEntry = path.join(root, 'dist', 'cjs', 'index.js');
const esmDir = path.join(root, 'dist', 'esm');
const names = Object.keys(require(cjsEntry)).filter((n) => n !== 'default' && n !== '__esModule');

fs.mkdirSync(esmDir, { recursive: true });
const js = [
  "import cjs from '../cjs/index.js';",
  ...names.map((n) => `export const ${n} = cjs.${n};`),
  'export default cjs;',
  '',
].join('\n');
fs.writeFileSync(path.join(esmDir, 'index.mjs'), js);
fs.writeFileSync(path.join(esmDir, 'index.d.mts'), "export * from '../cjs/index.js';\n");
