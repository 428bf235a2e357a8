/**
 * What the agent is told to run: the zone's spec laid over the image's config, with Docker's
 * rules. Entrypoint comes from the spec or the image; `cmd: 'image'` appends the image's Cmd,
 * `cmd: [...]` appends those arguments instead; without `cmd` there is no main process. Env is the
 * image's, overridden by the spec's; cwd and user likewise, with / and root as the last resort.
 */
import { InvalidConfigError } from '../errors';
import type { ValidatedZoneSpec } from './spec';

/** The part of an image's config a launch needs (src/image ImageConfig has these fields). */
export interface ImageRuntimeConfig {
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  /** KEY=VALUE strings, as in the OCI image config. */
  readonly env: readonly string[];
  readonly workingDir: string;
  readonly user: string;
}

export interface LaunchPlan {
  /** The main process, or undefined for a sandbox that only serves exec(). */
  argv?: string[];
  env: Record<string, string>;
  cwd: string;
  /** As given (`uid[:gid]` or `name[:group]`); the agent resolves names in the image's /etc/passwd and /etc/group. */
  user: string;
  hostname: string;
  /** Stay up when the main process ends. */
  keepAlive: boolean;
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function planLaunch(spec: ValidatedZoneSpec, image: ImageRuntimeConfig, zoneName: string): LaunchPlan {
  const entrypoint = spec.entrypoint ?? [...image.entrypoint];
  let argv: string[] | undefined;
  if (spec.cmd === 'image') argv = [...entrypoint, ...(spec.entrypoint ? [] : image.cmd)];
  else if (spec.cmd) argv = [...entrypoint, ...spec.cmd];
  if (argv && argv.length === 0) {
    throw new InvalidConfigError('cmd', spec.cmd, `a command: the image ${spec.image} has no Entrypoint or Cmd of its own`);
  }
  const env: Record<string, string> = {};
  for (const entry of image.env) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  Object.assign(env, spec.env);
  env.PATH ??= DEFAULT_PATH;
  env.HOSTNAME = spec.hostname ?? hostnameOf(zoneName);
  return {
    argv,
    env,
    cwd: spec.cwd ?? (image.workingDir || '/'),
    user: spec.user ?? (image.user || '0:0'),
    hostname: env.HOSTNAME,
    keepAlive: spec.keepAlive || argv === undefined,
  };
}

/** A zone name as a hostname label (names may hold `_` and `.`, hostnames may not). */
function hostnameOf(name: string): string {
  const label = name.replace(/[^a-zA-Z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
  return label || 'zone';
}
