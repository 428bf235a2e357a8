// The KVM microbenchmarks run briefly and give positive per-operation figures (skipped without /dev/kvm).
import * as fs from 'node:fs';
import t from 'tap';
import { runMicroBenchmarks } from '../../src/bench/micro/run';

const skip = fs.existsSync('/dev/kvm') ? false : '/dev/kvm does not exist on this host';

t.test('VM create/destroy and the exit round trip', { skip }, async (t) => {
  const results = await runMicroBenchmarks({ timeMs: 200 });
  t.same(results.map((r) => r.name), ['VM create + destroy (2 MiB, 1 vCPU)', 'port-I/O exit round trip to a JS handler']);
  for (const r of results) {
    t.ok(r.median > 0 && Number.isFinite(r.median), `${r.name}: median ${r.median} ${r.unit}`);
    t.ok(r.samples > 0, `${r.name}: ${r.samples} samples`);
  }
});
