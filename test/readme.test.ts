/**
 * The README's runnable snippets, read out of README.md and run as written, so the documentation
 * cannot drift from the API. A snippet is runnable when the line before its ```ts fence is
 *
 *   <!-- readme-test: expect /REGEX/ [needs: kvm|emulated-host] -->
 *
 * It is transpiled (TypeScript's own transpileModule, as a user's build would) to an ES module in a
 * scratch project whose node_modules/bulkhead links to this package, so `import … from 'bulkhead'`
 * goes through package.json's exports exactly as for a user. It must exit 0 and print a match.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

const root = path.join(__dirname, '..');

interface Snippet {
  line: number;
  expect: RegExp;
  needs?: string;
  code: string;
}

export function runnableSnippets(markdown: string): Snippet[] {
  const lines = markdown.split('\n');
  const out: Snippet[] = [];
  for (let i = 0; i + 1 < lines.length; i++) {
    const m = /^<!-- readme-test: expect \/(.+)\/( needs: ([\w-]+))? -->$/.exec(lines[i]!.trim());
    if (!m || !/^```ts\s*$/.test(lines[i + 1]!)) continue;
    const end = lines.indexOf('```', i + 2);
    out.push({ line: i + 3, expect: new RegExp(m[1]!), needs: m[3], code: lines.slice(i + 2, end).join('\n') });
  }
  return out;
}

function lacks(needs: string | undefined): string | false {
  if (needs === 'kvm' && !existsSync('/dev/kvm')) return 'this machine has no /dev/kvm';
  return false;
}

const snippets = runnableSnippets(readFileSync(path.join(root, 'README.md'), 'utf8'));

t.test('README.md has runnable snippets', async (t) => {
  t.ok(snippets.length >= 1, `${snippets.length} runnable snippet(s)`);
});

for (const s of snippets) {
  t.test(`README.md line ${s.line}: runs as written`, { skip: lacks(s.needs), timeout: 15 * 60_000 }, async (t) => {
    t.ok(existsSync(path.join(root, 'dist', 'esm', 'index.mjs')), 'the package is built (npm run build:ts)');
    const project = t.testdir({ 'package.json': JSON.stringify({ type: 'module' }) });
    mkdirSync(path.join(project, 'node_modules'));
    symlinkSync(root, path.join(project, 'node_modules', 'bulkhead'));
    const js = ts.transpileModule(s.code, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, lib: ['esnext'] },
    }).outputText;
    writeFileSync(path.join(project, 'snippet.mjs'), js);
    const r = spawnSync(process.execPath, ['snippet.mjs'], { cwd: project, encoding: 'utf8', timeout: 14 * 60_000 });
    t.equal(r.status, 0, 'exits 0', { stderr: r.stderr.slice(-3000), stdout: r.stdout.slice(-2000) });
    t.match(r.stdout, s.expect, `prints ${s.expect}`);
  });
}
