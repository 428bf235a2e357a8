/**
 * zone.files over the agent's file operations. Paths are absolute paths inside the zone; reads
 * and writes stream, so a file of any size passes with bounded memory. A call on a zone that has
 * ended fails at once with the zone's ZoneClosedError; one pending when it ends, likewise.
 */
import { PassThrough, type Readable } from 'node:stream';
import type { AgentClient } from './agent';
import type { ZoneFiles } from './types';

export function agentFiles(agent: () => AgentClient, gone: () => Error | undefined): ZoneFiles {
  /** Runs `op` on the agent, replacing a session error by the zone's own when the zone is gone. */
  const call = async <T>(op: (a: AgentClient) => Promise<T>): Promise<T> => {
    try {
      return await op(agent());
    } catch (err) {
      throw gone() ?? err;
    }
  };
  return {
    read: (p) => call((a) => a.readFile(p)),
    readStream(p): Readable {
      const out = new PassThrough();
      call((a) => a.createReadStream(p)).then(
        ({ stream, done }) => {
          stream.on('error', (err) => out.destroy(gone() ?? err)).pipe(out);
          done.catch((err: Error) => out.destroy(gone() ?? err));
        },
        (err: Error) => out.destroy(err),
      );
      return out;
    },
    write: async (p, data, opts = {}) => {
      await call((a) => a.writeFile(p, data, { mode: opts.mode }));
    },
    stat: (p) => call((a) => a.stat(p)),
    exists: async (p) => {
      try {
        await call((a) => a.stat(p, { follow: false }));
        return true;
      } catch (err) {
        if ((err as { errno?: string }).errno === 'ENOENT') return false;
        throw err;
      }
    },
    list: (p) => call((a) => a.list(p)),
    mkdir: (p, opts = {}) => call((a) => a.mkdir(p, { mode: opts.mode, parents: opts.recursive })),
    remove: (p, opts = {}) => call((a) => a.remove(p, { recursive: opts.recursive })),
    rename: (from, to) => call((a) => a.rename(from, to)),
  };
}
