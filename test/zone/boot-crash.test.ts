// A zone whose VM ends on its own during boot (its kernel panics, or the CPU triple-faults before the
// agent answers) fails Zone.create() with ZoneStartError at stage 'boot', the way it ended and the
// console's last lines: not "the zone is gone", which is for a destroy or an abort. Synthetic kernels
// (test/kvm/fixtures/synthetic-kernel.ts) run on this host's /dev/kvm, PVM included; nothing is left.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { Zone } from '../../src/zone';
import { ZoneStartError } from '../../src/zone/errors';
import { kvmSkipReason } from '../kvm/fixtures/guests';
import { PANIC_RESET, syntheticVmlinux } from '../kvm/fixtures/synthetic-kernel';

const skip = kvmSkipReason();
const dir = mkdtempSync(path.join(os.tmpdir(), 'bh-boot-crash-'));
const savedRuntime = process.env.BULKHEAD_RUNTIME_DIR;
process.env.BULKHEAD_RUNTIME_DIR = path.join(dir, 'run');
t.teardown(() => {
  if (savedRuntime === undefined) delete process.env.BULKHEAD_RUNTIME_DIR;
  else process.env.BULKHEAD_RUNTIME_DIR = savedRuntime;
  rmSync(dir, { recursive: true, force: true });
});

/** Writes `text` to the serial port (COM1), as a kernel's early console would. */
function serial(text: string): number[] {
  return [0x66, 0xba, 0xf8, 0x03, ...[...Buffer.from(text)].flatMap((b) => [0xb0, b, 0xee])]; // mov $0x3f8,%dx; (mov $b,%al; out %al,(%dx))*
}

/** #UD with no IDT: #GP, #DF, then a triple fault (KVM_EXIT_SHUTDOWN). */
const TRIPLE_FAULT = [0x0f, 0x0b]; // ud2

function kernelFile(name: string, code: number[]): string {
  const file = path.join(dir, name);
  writeFileSync(file, syntheticVmlinux(code));
  return file;
}

for (const [how, code, kind] of [
  ['a triple fault', TRIPLE_FAULT, /crash/],
  ['a kernel panic (reboot=k, panic_warm)', PANIC_RESET, /panic/],
] as const) {
  t.test(`${how} during boot fails create() at stage 'boot', with the console's last lines`, { skip }, async (t) => {
    const kernel = kernelFile(`${how.split(' ')[1]}.vmlinux`, [...serial('early boot: about to die\n'), ...code]);
    const err = await Zone.create({ image: 'busybox', memoryMiB: 32, kernel }, { backend: 'kvm' }).catch((e: unknown) => e);
    t.type(err, ZoneStartError, `a ZoneStartError, not "the zone is gone": ${(err as Error).message}`);
    const e = err as ZoneStartError;
    t.equal(e.stage, 'boot');
    t.match(e.message, /the zone's VM ended during boot/);
    t.match(e.message, kind, 'the message says how it ended');
    t.match(e.consoleTail, /early boot: about to die/, "the console's last lines come with it");
    const zones = path.join(process.env.BULKHEAD_RUNTIME_DIR!, 'zones');
    t.same(readdirSync(zones).filter((d) => d !== 'names'), [], 'no state directory is left');
  });
}
