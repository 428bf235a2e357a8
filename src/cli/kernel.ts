/**
 * `bulkhead kernel build|path|list|pin`: build (or find in the cache) a guest or host kernel and
 * print its vmlinux path as the last stdout line; list the cache; move the kernel-source pin.
 */
import { buildKernel, findKernel, KERNEL_FLAVORS, listKernels, movePin, readPin, type KernelArtifacts } from '../kernel';
import { defineCommand, defineGroup, integerFlag } from './args';

const configOption = {
  type: 'string',
  short: 'c',
  value: `${KERNEL_FLAVORS.join('|')}|FILE`,
  description: 'which config fragment (default zone)',
} as const;

function print(k: KernelArtifacts, json: boolean | undefined): void {
  if (json) process.stdout.write(JSON.stringify({ ...k }, null, 2) + '\n');
  process.stdout.write(k.vmlinux + '\n');
}

const build = defineCommand({
  name: 'kernel build',
  summary: 'build a kernel from the pinned Debian source and a config fragment, or find it in the cache',
  options: {
    config: configOption,
    jobs: { type: 'string', short: 'j', value: 'N', description: 'parallel make jobs (default: the number of CPUs)' },
    json: { type: 'boolean', description: 'also print the build record as JSON' },
  },
  async run({ values }) {
    const config = values.config ?? 'zone';
    const ac = new AbortController();
    const onSignal = () => ac.abort();
    process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
    try {
      const k = await buildKernel({ config, jobs: integerFlag('jobs', values.jobs, 1, 1024), signal: ac.signal });
      if (k.cached) process.stderr.write(`kernel ${config}: cached (${k.info.release}, ${k.key})\n`);
      print(k, values.json);
      return 0;
    } catch (err) {
      if (ac.signal.aborted) {
        process.stderr.write(`kernel ${config}: interrupted; the next build resumes where this one stopped\n`);
        return 130;
      }
      throw err;
    } finally {
      process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    }
  },
});

const pathCommand = defineCommand({
  name: 'kernel path',
  summary: 'print the cached vmlinux of a config; exit 1 if it has not been built',
  options: { config: configOption, json: { type: 'boolean', description: 'also print the build record as JSON' } },
  async run({ values }) {
    const config = values.config ?? 'zone';
    const k = await findKernel({ config });
    if (!k) {
      process.stderr.write(`bulkhead kernel: no ${config} kernel built yet; run: bulkhead kernel build --config ${config}\n`);
      return 1;
    }
    print(k, values.json);
    return 0;
  },
});

const list = defineCommand({
  name: 'kernel list',
  summary: 'the kernels in the cache',
  options: {},
  async run() {
    for (const k of listKernels()) {
      process.stdout.write(`${k.info.config.padEnd(6)} ${k.info.release.padEnd(12)} ${k.info.sourceVersion.padEnd(22)} ${k.dir}\n`);
    }
    return 0;
  },
});

const pin = defineCommand({
  name: 'kernel pin',
  summary: 'show the kernel-source pin (kernel-configs/source.json), or move it to a version apt offers',
  options: {
    to: { type: 'string', value: 'VERSION', description: "move the pin to this Debian version (sha256 from apt's index)" },
    latest: { type: 'boolean', description: 'move the pin to the newest version apt offers' },
  },
  async run({ values }) {
    if (values.to === undefined && !values.latest) {
      const p = readPin();
      process.stdout.write(`${p.package} ${p.version} sha256:${p.sha256}\n`);
      return 0;
    }
    const before = readPin();
    const next = await movePin(values.latest ? undefined : values.to);
    process.stdout.write(`${next.package}: ${before.version} -> ${next.version} (sha256:${next.sha256})\n`);
    process.stderr.write('commit kernel-configs/source.json; kernels of the old pin stay in the cache\n');
    return 0;
  },
});

export const command = defineGroup('kernel', 'guest and emulated-host kernels, built from the pinned Debian source', [
  build,
  pathCommand,
  list,
  pin,
]);
