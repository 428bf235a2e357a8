#!/usr/bin/env node
// Writes an ES-module facade over the CommonJS build for every entry in package.json's "exports"
// (dist/esm/index.mjs for ".", dist/esm/kvm.mjs for "./kvm", ...), each with its .d.mts. One
// implementation, so an ESM and a CJS consumer in the same process share the same classes
// (instanceof on errors keeps working); each export list is read from the built CJS module.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const { exports: entries } = require(path.join(root, 'package.json'));
const esmDir = path.join(root, 'dist', 'esm');
fs.mkdirSync(esmDir, { recursive: true });

for (const [subpath, target] of Object.entries(entries)) {
  if (typeof target === 'string') continue; // ./package.json
  const cjsFile = path.join(root, target.require.default);
  const esmFile = path.join(root, target.import.default);
  if (!fs.existsSync(cjsFile)) throw new Error(`${subpath}: ${cjsFile} was not built`);
  const relative = path.relative(path.dirname(esmFile), cjsFile).split(path.sep).join('/');
  const names = Object.keys(require(cjsFile)).filter((n) => n !== 'default' && n !== '__esModule');
  const js = [`import cjs from './${relative}';`, ...names.map((n) => `export const ${n} = cjs.${n};`), 'export default cjs;', ''];
  fs.writeFileSync(esmFile, js.join('\n'));
  fs.writeFileSync(path.join(root, target.import.types), `export * from './${relative}';\n`);
}
