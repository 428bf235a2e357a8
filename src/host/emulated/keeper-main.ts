/**
 * Entry point of a keeper process (started detached by ensureKeeper): its one argument is the
 * KeeperOptions as JSON. Exits 0 when the keeper stopped normally, 1 when the host would not boot.
 */
import { runKeeper, type KeeperOptions } from './keeper';

const opts = JSON.parse(process.argv[2] ?? '{}') as KeeperOptions;
runKeeper(opts).then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`keeper: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
