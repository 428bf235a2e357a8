// The VMM benchmark's guest image is well-formed: a flat multiboot image QEMU's -kernel accepts and our
// loader reads the same way, with its parameter block where the drivers patch N; and the smaps
// arithmetic behind the memory-overhead figure.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { buildExitGuest, DONE_PORT, DONE_VALUE, MULTIBOOT_AOUT_KLUDGE, MULTIBOOT_MAGIC, parseMultiboot, QEMU_DONE_STATUS, readParams, withCount } from '../../src/bench/vmm/guest';
import { estimateImageCopies, memoryOverhead, parseSmaps, type Mapping } from '../../src/bench/vmm/memory';
import { perExitNs } from '../../src/bench/vmm/exits';

const binutils = ['as', 'ld'].every((tool) => spawnSync(tool, ['--version']).status === 0);

t.test('the exit guest assembles into a flat multiboot image', { skip: binutils ? false : 'binutils (as, ld) not installed' }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-guest-test-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const image = buildExitGuest(dir);
  t.same(fs.readdirSync(dir), [], 'no build products left behind');
  t.ok(image.length > 64 && image.length < 8192, `small image (${image.length} bytes)`);

  const h = parseMultiboot(image);
  t.equal(h.offset, 0, 'header at the start of the file');
  t.equal(image.readUInt32LE(0), MULTIBOOT_MAGIC);
  t.ok(h.flags & MULTIBOOT_AOUT_KLUDGE, 'load addresses in the header (flat image)');
  t.equal((image.readUInt32LE(0) + image.readUInt32LE(4) + image.readUInt32LE(8)) >>> 0, 0, 'checksum');
  t.equal(h.loadAddr, 0x100000, 'loaded at 1 MiB');
  t.equal(h.headerAddr, h.loadAddr);
  t.equal(h.loadEndAddr, 0, 'the whole file is loaded');
  t.ok(h.entryAddr > h.loadAddr && h.entryAddr < h.loadAddr + image.length, 'entry inside the image');

  t.same(readParams(image), { count: 1000, port: 0xe0 }, 'default parameters');
  const patched = withCount(image, 123456);
  t.same(readParams(patched), { count: 123456, port: 0xe0 }, 'N patched into a copy');
  t.same(readParams(image).count, 1000, 'the original is untouched');
  t.same(parseMultiboot(patched), h, 'patching N keeps the header valid');
  t.throws(() => withCount(image, -1), /invalid exit count/);
  t.throws(() => withCount(image, 1.5), /invalid exit count/);

  // The instructions the benchmark depends on: SYSEXIT to CPL3, the measured OUT, the done write.
  const code = image.subarray(h.entryAddr - h.loadAddr);
  t.ok(code.includes(Buffer.from([0x0f, 0x35])), 'sysexit');
  t.ok(code.includes(Buffer.from([0xee, 0x49, 0x75])), 'out dx,al; dec ecx; jnz (the loop)');
  t.ok(code.includes(Buffer.from([0x66, 0xba, DONE_PORT, 0x00, 0xb0, DONE_VALUE, 0xee])), 'mov dx,DONE_PORT; mov al,DONE_VALUE; out dx,al');
  t.equal(QEMU_DONE_STATUS, 67, "isa-debug-exit's status differs from QEMU's own error status 1");

  const broken = Buffer.from(image);
  broken.writeUInt32LE(0, 8);
  t.throws(() => parseMultiboot(broken), /bad checksum/);
  t.throws(() => parseMultiboot(Buffer.alloc(256)), /no multiboot header/);
});

t.test('ns per exit is the difference of two runs over the difference of N', async (t) => {
  t.equal(perExitNs(1_000_000, 11_000_000, 1000, 11000), 1000);
});

const SMAPS = `555555554000-555555556000 r-xp 00000000 08:01 123 /usr/bin/vmm
Size:                  8 kB
Rss:                   8 kB
Pss:                   4 kB
Anonymous:             0 kB
555555556000-555555600000 rw-p 00000000 00:00 0 [heap]
Size:                680 kB
Rss:                 600 kB
Pss:                 600 kB
Anonymous:           600 kB
7f0000000000-7f0010000000 rw-s 00000000 00:01 77 /memfd:bulkhead-guest-ram (deleted)
Size:             262144 kB
Rss:               25000 kB
Pss:               25000 kB
Anonymous:             0 kB
7f1000000000-7f1010000000 rw-p 00000000 00:00 0
Size:             262144 kB
Rss:               26000 kB
Pss:               26000 kB
Anonymous:         26000 kB
7f2000000000-7f2000130000 rw-p 00000000 00:00 0
Size:               1216 kB
Rss:                1216 kB
Pss:                1216 kB
Anonymous:          1216 kB
7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0 [stack]
Size:                132 kB
Rss:                  20 kB
Pss:                  20 kB
Anonymous:            20 kB
`;

t.test('memory overhead: RSS minus the guest RAM mapping, per VMM', async (t) => {
  t.equal(parseSmaps(SMAPS).length, 6);
  const total = 8 + 600 + 25000 + 26000 + 1216 + 20;
  const ours = memoryOverhead(SMAPS, 'VmRSS:\t52844 kB\n', 'ours', 256, [1216 * 1024 - 100]);
  t.equal(ours.rssKb, total);
  t.equal(ours.vmRssKb, 52844);
  t.equal(ours.guestKb, 25000, 'ours: the memfd mapping');
  t.equal(ours.overheadKb, total - 25000);
  t.equal(ours.imageCopiesKb, 1216, 'an anonymous mapping the size of an image file');
  t.equal(ours.breakdownKb.file, 8);
  const qemu = memoryOverhead(SMAPS, '', 'qemu', 256);
  t.equal(qemu.guestKb, 26000, 'QEMU: the anonymous private mapping of exactly -m');
  t.equal(qemu.overheadKb, total - 26000);
  t.equal(qemu.imageCopiesKb, 0);
  t.throws(() => memoryOverhead(SMAPS, '', 'qemu', 512), /no guest RAM mapping/);
});

t.test('image copies are found inside merged anonymous mappings, never more than their size', async (t) => {
  const anon = (sizeKb: number, rssKb: number): Mapping => ({ start: 0n, end: 0n, perms: 'rw-p', path: '', sizeKb, rssKb, pssKb: rssKb, anonKb: rssKb });
  // A 19 MB kernel buffer merged with a 1 MB initrd buffer and a thread stack's few pages.
  const merged = anon(19076 + 1024 + 8192, 19072 + 1000 + 16);
  t.equal(estimateImageCopies([merged, anon(132, 20)], [19517704, 1000 * 1024]), Math.ceil(19517704 / 1024) + 1000);
  t.equal(estimateImageCopies([anon(100, 100)], [19517704]), 0, 'no mapping large enough: nothing attributed');
  t.equal(estimateImageCopies([anon(20000, 50)], [19517704]), 50, 'at most the resident part');
});
