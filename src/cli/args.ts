/**
 * The one way every `bulkhead` subcommand reads its arguments: node's util.parseArgs under a small
 * declarative spec, so `--x=y` and `--x y` mean the same everywhere, every command has `--help`,
 * and an unknown flag is refused with the list of the valid ones.
 *
 *   const command = defineCommand({
 *     name: 'kernel build', summary: 'build (or find) a kernel', args: '',
 *     options: { config: { type: 'string', short: 'c', value: 'NAME', description: '...' } },
 *     async run({ values }) { ... return 0; },
 *   });
 *
 * Commands that take a command line of their own (`run IMAGE CMD…`, `exec ZONE CMD…`) set
 * `stopAtPositional`: options end at the first positional or at `--`, and the rest is passed
 * through untouched in `rest`.
 */
import { parseArgs } from 'node:util';
import { BulkheadError, InvalidConfigError } from '../errors';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** May be given more than once (values collected in order). */
  multiple?: boolean;
  /** The value's placeholder in help, e.g. 'N' or 'zone|host|FILE'. */
  value?: string;
  description: string;
}

export type OptionSpecs = Record<string, OptionSpec>;

type ValueOf<O extends OptionSpec> = O['type'] extends 'boolean'
  ? O['multiple'] extends true
    ? boolean[]
    : boolean
  : O['multiple'] extends true
    ? string[]
    : string;

export interface Parsed<O extends OptionSpecs> {
  values: { [K in keyof O]?: ValueOf<O[K]> };
  positionals: string[];
  /** With stopAtPositional: everything from the first positional's successor, or after `--`. */
  rest: string[];
}

export interface CommandSpec<O extends OptionSpecs> {
  /** The words after `bulkhead`, e.g. 'kernel build'. */
  name: string;
  summary: string;
  /** Positional synopsis for help, e.g. 'IMAGE [-- CMD...]'. */
  args?: string;
  /** Extra help text after the options. */
  details?: string;
  options: O;
  /** How many positionals are allowed (default none). */
  positionals?: { min: number; max: number };
  stopAtPositional?: boolean;
  run(parsed: Parsed<O>): Promise<number>;
}

export interface Command {
  readonly name: string;
  readonly summary: string;
  /** A group's commands (`kernel build`, `kernel path`, …); undefined for a plain command. */
  readonly subcommands?: readonly Command[];
  help(): string;
  /** Parses argv and runs; returns the exit status (2 for a usage error, after printing it). */
  main(argv: readonly string[]): Promise<number>;
}

/** A usage error: an unknown flag, a missing or malformed value, too many arguments. Exit status 2. */
export class UsageError extends BulkheadError {
  constructor(
    message: string,
    readonly command: string,
  ) {
    super('INVALID_CONFIG', message);
  }
}

export function defineCommand<O extends OptionSpecs>(spec: CommandSpec<O>): Command {
  const help = (): string => formatHelp(spec);
  return {
    name: spec.name,
    summary: spec.summary,
    help,
    async main(argv) {
      try {
        const parsed = parseCommand(spec, argv);
        if (parsed === 'help') {
          process.stdout.write(help());
          return 0;
        }
        return await spec.run(parsed);
      } catch (err) {
        if (err instanceof UsageError) {
          process.stderr.write(`bulkhead ${spec.name}: ${err.message}\n\n${help()}`);
          return 2;
        }
        throw err;
      }
    },
  };
}

export function parseCommand<O extends OptionSpecs>(spec: CommandSpec<O>, argv: readonly string[]): Parsed<O> | 'help' {
  const options = { ...spec.options, help: { type: 'boolean', short: 'h', description: 'show this help' } } as OptionSpecs;
  let own = [...argv];
  let rest: string[] = [];
  if (spec.stopAtPositional) [own, rest] = splitAtFirstPositional(argv, options);
  let result: { values: Record<string, unknown>; positionals: string[] };
  try {
    result = parseArgs({
      args: own,
      options: Object.fromEntries(
        Object.entries(options).map(([name, o]) => [
          name,
          { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) },
        ]),
      ),
      allowPositionals: true,
      strict: true,
    }) as { values: Record<string, unknown>; positionals: string[] };
  } catch (err) {
    throw new UsageError(explainParseError(err as Error & { code?: string }, options), spec.name);
  }
  if (result.values.help) return 'help';
  const { min, max } = spec.positionals ?? { min: 0, max: 0 };
  const positionals = result.positionals;
  if (spec.stopAtPositional && rest.length > 0 && positionals.length === 0 && min > 0) {
    positionals.push(rest.shift()!);
    if (rest[0] === '--') rest.shift(); // `run IMAGE -- CMD`: the separator is not part of CMD
  }
  if (positionals.length < min) throw new UsageError(`missing argument${spec.args ? `: ${spec.args}` : ''}`, spec.name);
  if (positionals.length > max) {
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[max])}${spec.args ? `; usage: ${spec.args}` : ''}`, spec.name);
  }
  delete result.values.help;
  return { values: result.values as Parsed<O>['values'], positionals, rest };
}

/**
 * Splits argv where the command's own options end: at `--` (dropped) or at the first positional
 * (kept as the first element of the second half). A string option's separate value is skipped.
 */
function splitAtFirstPositional(argv: readonly string[], options: OptionSpecs): [string[], string[]] {
  const byShort = new Map(Object.entries(options).flatMap(([n, o]) => (o.short ? [[o.short, n]] : [])));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return [argv.slice(0, i), argv.slice(i + 1)];
    if (!a.startsWith('-') || a === '-') return [argv.slice(0, i), argv.slice(i)];
    const name = a.startsWith('--') ? a.slice(2) : byShort.get(a.slice(1, 2));
    const takesValue = name !== undefined && options[name]?.type === 'string';
    const inline = a.startsWith('--') ? a.includes('=') : a.length > 2;
    if (takesValue && !inline) i++;
  }
  return [[...argv], []];
}

function explainParseError(err: Error & { code?: string }, options: OptionSpecs): string {
  const valid = Object.entries(options)
    .map(([n, o]) => `--${n}${o.short ? `/-${o.short}` : ''}`)
    .join(', ');
  const quoted = /'(-[^']*)'/.exec(err.message)?.[1];
  const flag = (quoted && /--[\w-]+/.exec(quoted)?.[0]) ?? quoted;
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${flag ?? err.message}; valid options: ${valid}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return `${flag ? `option ${flag}` : 'an option'} ${/does not take/.test(err.message) ? 'takes no value' : 'needs a value'}; valid options: ${valid}`;
    default:
      return err.message;
  }
}

export function formatHelp<O extends OptionSpecs>(spec: Pick<CommandSpec<O>, 'name' | 'summary' | 'args' | 'options' | 'details'>): string {
  const lines = [`usage: bulkhead ${spec.name} [options]${spec.args ? ` ${spec.args}` : ''}`, '', spec.summary, '', 'options:'];
  const rows = Object.entries({ ...spec.options, help: { type: 'boolean', short: 'h', description: 'show this help' } as OptionSpec }).map(
    ([name, o]) => [`${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`, o.description],
  );
  const width = Math.max(...rows.map(([l]) => l!.length)) + 2;
  for (const [left, right] of rows) lines.push(`  ${left!.padEnd(width)}${right}`);
  if (spec.details) lines.push('', spec.details.trimEnd());
  return lines.join('\n') + '\n';
}

/** A command with subcommands (`bulkhead kernel build|path|list|pin`). */
export function defineGroup(name: string, summary: string, commands: readonly Command[]): Command {
  const byWord = new Map(commands.map((c) => [c.name.split(' ').pop()!, c]));
  const help = () =>
    [
      `usage: bulkhead ${name} <command> [options]`,
      '',
      summary,
      '',
      'commands:',
      ...commands.map((c) => `  ${c.name.split(' ').pop()!.padEnd(10)} ${c.summary}`),
      '',
      `bulkhead ${name} <command> --help shows a command's options.`,
    ].join('\n') + '\n';
  return {
    name,
    summary,
    subcommands: commands,
    help,
    async main(argv) {
      const [word, ...rest] = argv;
      if (word === undefined || word === '-h' || word === '--help' || word === 'help') {
        (word === undefined ? process.stderr : process.stdout).write(help());
        return word === undefined ? 2 : 0;
      }
      const command = byWord.get(word);
      if (!command) {
        process.stderr.write(`bulkhead ${name}: unknown command ${JSON.stringify(word)}; valid: ${[...byWord.keys()].join(', ')}\n\n${help()}`);
        return 2;
      }
      return command.main(rest);
    },
  };
}

/** Value helpers that turn a flag's text into a checked number or list, with a typed error. */
export function integerFlag(flag: string, value: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new InvalidConfigError(`--${flag}`, value, `an integer ${min}..${max === Number.MAX_SAFE_INTEGER ? '' : max}`.replace(/\.\.$/, ' or more'));
  }
  return n;
}

export function listFlag<T extends string>(flag: string, value: string | undefined, allowed: readonly T[]): T[] | undefined {
  if (value === undefined) return undefined;
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) if (!allowed.includes(item as T)) throw new InvalidConfigError(`--${flag}`, item, allowed.join(', '));
  if (items.length === 0) throw new InvalidConfigError(`--${flag}`, value, `one or more of ${allowed.join(', ')}`);
  return items as T[];
}
