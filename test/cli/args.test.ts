// Every `bulkhead` command parses its arguments the same way: --help, --x=y and --x y alike, and an
// unknown flag refused with the list of valid ones. Runs the built CLI as a user would.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { defineCommand, parseCommand } from '../../src/cli/args';
import { allCommands } from '../../src/cli/main';

const main = path.join(__dirname, '..', '..', 'dist', 'cjs', 'cli', 'main.js');
const cli = (args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 30_000 });

t.test('every command has --help and refuses an unknown flag with the valid ones', async (t) => {
  const commands = await allCommands();
  t.ok(commands.length >= 8, `${commands.length} commands`);
  for (const c of commands) {
    const words = c.name.split(' ');
    const help = cli([...words, '--help']);
    t.equal(help.status, 0, `bulkhead ${c.name} --help exits 0`);
    t.match(help.stdout, new RegExp(`^usage: bulkhead ${c.name}`), `bulkhead ${c.name} --help prints its usage`);
    const bad = cli([...words, '--no-such-flag']);
    t.equal(bad.status, 2, `bulkhead ${c.name} --no-such-flag exits 2`);
    t.match(bad.stderr, /unknown option --no-such-flag; valid options: .*--help/, `bulkhead ${c.name}: names the valid options`);
  }
  t.equal(cli([]).status, 2, 'no command: usage, exit 2');
  t.match(cli(['frobnicate']).stderr, /unknown command "frobnicate"; valid: doctor, kernel/);
  t.match(cli(['kernel', 'frobnicate']).stderr, /unknown command "frobnicate"; valid: build, path, list, pin/);
});

t.test('--x=y and --x y mean the same; missing values and extra arguments are usage errors', async (t) => {
  const spec = {
    name: 'test',
    summary: 'a test command',
    args: 'IMAGE [CMD...]',
    options: {
      memory: { type: 'string', short: 'm', value: 'MiB', description: 'memory' },
      env: { type: 'string', short: 'e', multiple: true, value: 'K=V', description: 'env' },
      rm: { type: 'boolean', description: 'remove' },
    },
    positionals: { min: 1, max: 1 },
    stopAtPositional: true,
    run: async () => 0,
  } as const;
  t.same(parseCommand(spec, ['--memory=64', 'img']), { values: { memory: '64' }, positionals: ['img'], rest: [] });
  t.same(parseCommand(spec, ['--memory', '64', 'img']), { values: { memory: '64' }, positionals: ['img'], rest: [] });
  t.same(parseCommand(spec, ['-m', '64', 'img']), { values: { memory: '64' }, positionals: ['img'], rest: [] });
  t.same(
    parseCommand(spec, ['-e', 'A=1', '--env=B=2', '--rm', 'img', 'sh', '-c', 'echo --rm -m']),
    { values: { env: ['A=1', 'B=2'], rm: true }, positionals: ['img'], rest: ['sh', '-c', 'echo --rm -m'] },
    "options end at the image: the command's own flags pass through",
  );
  t.same(parseCommand(spec, ['img', '--', 'ls']), { values: {}, positionals: ['img'], rest: ['ls'] }, '`IMAGE -- CMD`: the separator is dropped');
  t.same(parseCommand(spec, ['img', 'sh', '--', 'x']), { values: {}, positionals: ['img'], rest: ['sh', '--', 'x'] }, 'a later -- belongs to CMD');
  t.same(parseCommand(spec, ['--rm', '--', 'img', 'ls']), { values: { rm: true }, positionals: ['img'], rest: ['ls'] });
  t.throws(() => parseCommand(spec, ['--memory']), { code: 'INVALID_CONFIG', message: /--memory needs a value/ });
  t.throws(() => parseCommand(spec, []), { code: 'INVALID_CONFIG', message: /missing argument: IMAGE/ });
  t.throws(() => parseCommand({ ...spec, stopAtPositional: false }, ['a', 'b']), { message: /unexpected argument "b"/ });
  t.throws(() => parseCommand(spec, ['--rm=yes', 'img']), { message: /--rm takes no value/ });
  t.equal(parseCommand(spec, ['-h']), 'help');
  t.equal(typeof defineCommand(spec).help(), 'string');
});
