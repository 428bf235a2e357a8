/**
 * What an interrupted benchmark must undo (QEMU children, temp dirs, the emulated host): one SIGINT/
 * SIGTERM handler runs every registered step, then exits 130. Steps unregister themselves when their
 * owner finished normally.
 */
type Step = () => void | Promise<void>;

const steps = new Set<Step>();
let installed = false;

async function onSignal(signal: NodeJS.Signals): Promise<void> {
  process.stderr.write(`[bench:vmm] ${signal}: cleaning up\n`);
  for (const step of [...steps].reverse()) {
    try {
      await step();
    } catch {
      // best effort: the next step still runs
    }
  }
  process.exit(130);
}

/** Registers a cleanup step; returns its unregister function. */
export function onInterrupt(step: Step): () => void {
  if (!installed) {
    installed = true;
    process.once('SIGINT', (s) => void onSignal(s));
    process.once('SIGTERM', (s) => void onSignal(s));
  }
  steps.add(step);
  return () => void steps.delete(step);
}
