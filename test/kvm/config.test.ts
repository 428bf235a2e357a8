// Validation and misuse: every invalid config field gives InvalidConfigError naming it; every method of a
// destroyed VM gives VM_DESTROYED; guest memory accesses are bounds-checked; state errors are typed.
import t from 'tap';
import { BulkheadError, InvalidConfigError, KvmUnavailableError } from '../../src/errors';
import { GuestMemoryOutOfRangeError, hostMemoryMiB, openHypervisor } from '../../src/kvm';
import { kvmSkipReason } from './fixtures/guests';

const skip = kvmSkipReason();

/** What `fn` throws (or its promise rejects with), or undefined. */
async function thrownBy(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  return undefined;
}
const kvm = skip ? undefined : openHypervisor();

t.test('the hypervisor reports its API version, max vCPUs and capabilities', { skip }, async (t) => {
  t.equal(kvm!.apiVersion, 12);
  t.ok(kvm!.maxVcpus >= 1 && kvm!.maxVcpus <= 256, `maxVcpus ${kvm!.maxVcpus}`);
  const names = kvm!.capabilities.map((c) => c.name);
  for (const name of ['KVM_CAP_IRQCHIP', 'KVM_CAP_IRQFD', 'KVM_CAP_IOEVENTFD', 'KVM_CAP_IMMEDIATE_EXIT']) {
    t.ok(names.includes(name), `${name} is in the table`);
  }
  t.ok(kvm!.capability('KVM_CAP_IMMEDIATE_EXIT') > 0, 'IMMEDIATE_EXIT is available (the core relies on it)');
  t.equal(kvm!.capability('KVM_CAP_NO_SUCH_THING'), 0);
});

t.test('an unusable /dev/kvm is a KvmUnavailableError with its reason', async (t) => {
  const missing = await thrownBy(() => openHypervisor({ path: '/nonexistent/kvm' }));
  t.ok(missing instanceof KvmUnavailableError && missing.code === 'KVM_UNAVAILABLE' && missing.reason === 'missing', String(missing));
  // /dev/null opens but does not answer KVM_GET_API_VERSION
  const notKvm = await thrownBy(() => openHypervisor({ path: '/dev/null' }));
  t.ok(
    notKvm instanceof KvmUnavailableError && notKvm.reason === 'open-failed' && /KVM_GET_API_VERSION/.test(notKvm.message),
    String(notKvm),
  );
});

t.test('every invalid config field gives InvalidConfigError naming field, value and allowed range', { skip }, async (t) => {
  const maxMiB = hostMemoryMiB();
  const max = kvm!.maxVcpus;
  const cases: [string, unknown, string][] = [
    ['config', null, 'config'],
    ['config', 'big', 'config'],
    ['memoryMiB', { vcpus: 1 }, 'memoryMiB'],
    ['memoryMiB', { memoryMiB: 0, vcpus: 1 }, 'memoryMiB'],
    ['memoryMiB', { memoryMiB: -4, vcpus: 1 }, 'memoryMiB'],
    ['memoryMiB', { memoryMiB: 1.5, vcpus: 1 }, 'memoryMiB'],
    ['memoryMiB', { memoryMiB: '16', vcpus: 1 }, 'memoryMiB'],
    ['memoryMiB', { memoryMiB: 16n, vcpus: 1 }, 'memoryMiB'],
    ['memoryMiB', { memoryMiB: maxMiB + 1, vcpus: 1 }, 'memoryMiB'],
    ['memoryMiB', { memoryMiB: NaN, vcpus: 1 }, 'memoryMiB'],
    ['vcpus', { memoryMiB: 2 }, 'vcpus'],
    ['vcpus', { memoryMiB: 2, vcpus: 0 }, 'vcpus'],
    ['vcpus', { memoryMiB: 2, vcpus: max + 1 }, 'vcpus'],
    ['vcpus', { memoryMiB: 2, vcpus: 1.5 }, 'vcpus'],
    ['vcpus', { memoryMiB: 2, vcpus: '2' }, 'vcpus'],
    ['irqchip', { memoryMiB: 2, vcpus: 1, irqchip: 'yes' }, 'irqchip'],
    ['irqchip', { memoryMiB: 2, vcpus: 1, irqchip: 1 }, 'irqchip'],
    ['unknown field', { memoryMiB: 2, vcpus: 1, memory: 2 }, 'memory'],
  ];
  for (const [what, config, field] of cases) {
    const err = await thrownBy(() => kvm!.createVm(config as never));
    t.ok(
        err instanceof InvalidConfigError &&
        err.code === 'INVALID_CONFIG' &&
        err.field === field &&
        typeof err.allowed === 'string' &&
        err.allowed.length > 0 &&
        err.message.includes(field),
      `${what} -> ${String(err)}: ${JSON.stringify(config, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`,
    );
  }
  const err = (() => {
    try {
      kvm!.createVm({ memoryMiB: maxMiB + 1, vcpus: 1 });
    } catch (e) {
      return e as InvalidConfigError;
    }
  })();
  t.equal(err?.value, maxMiB + 1);
  t.match(err?.allowed, new RegExp(`1 to ${maxMiB}`), 'the allowed range names the host limit');
  const tooMany = await thrownBy(() => kvm!.createVm({ memoryMiB: 2, vcpus: max + 1 }));
  t.match((tooMany as InvalidConfigError).allowed, new RegExp(`1 to ${max}`), 'the allowed range names the hypervisor limit');
});

t.test('limits that are valid create a VM', { skip }, async (t) => {
  await using a = kvm!.createVm({ memoryMiB: 1, vcpus: 1 });
  t.equal(a.memory.size, 1024 * 1024);
  await using b = kvm!.createVm({ memoryMiB: 8, vcpus: Math.min(4, kvm!.maxVcpus), irqchip: true });
  t.equal(b.hasIrqchip, kvm!.capability('KVM_CAP_IRQCHIP') > 0);
  t.equal(b.state, 'created');
});

t.test('guest memory accesses are bounds-checked (GUEST_MEMORY_OUT_OF_RANGE)', { skip }, async (t) => {
  await using vm = kvm!.createVm({ memoryMiB: 2, vcpus: 1 });
  const size = 2 * 1024 * 1024;
  vm.memory.write(size - 4, new Uint8Array([1, 2, 3, 4]));
  t.same([...vm.memory.read(BigInt(size - 4), 4)], [1, 2, 3, 4], 'the last bytes, by bigint GPA');
  vm.memory.write(16, new Uint16Array([0xbeef])); // any ArrayBufferView
  t.equal(vm.memory.read(16, 2).readUInt16LE(0), 0xbeef);
  t.equal(vm.memory.read(0, 0).length, 0, 'an empty read');
  const bad: [string, () => unknown][] = [
    ['read past the end', () => vm.memory.read(size - 2, 4)],
    ['read entirely past the end', () => vm.memory.read(size, 1)],
    ['read in the MMIO hole', () => vm.memory.read(0xd0000000, 4)],
    ['write past the end', () => vm.memory.write(size - 1, Buffer.alloc(2))],
    ['negative GPA', () => vm.memory.read(-1, 1)],
    ['fractional GPA', () => vm.memory.read(1.5, 1)],
    ['GPA above 2^64', () => vm.memory.read(1n << 64n, 1)],
    ['negative length', () => vm.memory.read(0, -1)],
    ['huge read', () => vm.memory.read(0, 2 ** 40)],
  ];
  for (const [what, fn] of bad) {
    const err = await thrownBy(fn);
    t.ok(err instanceof GuestMemoryOutOfRangeError && err.code === 'GUEST_MEMORY_OUT_OF_RANGE', `${what}: ${String(err)}`);
  }
  t.equal(vm.memory.isRam(0, size), true);
  t.equal(vm.memory.isRam(0, size + 1), false);
});

t.test('operations in the wrong state give INVALID_STATE', { skip }, async (t) => {
  await using vm = kvm!.createVm({ memoryMiB: 2, vcpus: 1 });
  await t.rejects(vm.pause(), { code: 'INVALID_STATE' }, 'pause before start');
  await t.rejects(vm.resume(), { code: 'INVALID_STATE' }, 'resume before start');
  vm.memory.write(0x1000, Buffer.from([0xeb, 0xfe])); // jmp $
  vm.vcpu(0).setRegisters({ general: { rip: 0x1000 }, segments: { cs: { base: 0, selector: 0 } } });
  vm.start();
  t.throws(() => vm.start(), { code: 'INVALID_STATE' }, 'start twice');
  t.throws(() => vm.vcpu(0).setRegisters({ general: { rax: 1 } }), { code: 'INVALID_STATE' }, 'set registers while running');
  await vm.stop();
  t.equal(vm.vcpu(0).getRegisters().general.rip, 0x1000n, 'registers are readable once stopped');
});

t.test('invalid handler ranges and register values are InvalidConfigErrors', { skip }, async (t) => {
  await using vm = kvm!.createVm({ memoryMiB: 2, vcpus: 2 });
  const h = () => 0;
  const cases: [string, () => unknown, string][] = [
    ['port base > 0xffff', () => vm.onPort(0x10000, 1, h), 'onPort.base'],
    ['port length 0', () => vm.onPort(0x10, 0, h), 'onPort.length'],
    ['ports past 0xffff', () => vm.onPort(0xfff0, 0x20, h), 'onPort.length'],
    ['handler not a function', () => vm.onPort(0x10, 1, 42 as never), 'onPort.handler'],
    ['MMIO over RAM', () => vm.onMmio(0x1000, 0x1000, h), 'onMmio.base'],
    ['MMIO length 0', () => vm.onMmio(0xd0000000, 0, h), 'onMmio.length'],
    ['vcpu index out of range', () => vm.vcpu(2), 'vcpu'],
    ['register value negative', () => vm.vcpu(0).setRegisters({ general: { rax: -1 } }), 'general.rax'],
    ['unknown register', () => vm.vcpu(0).setRegisters({ general: { eax: 1 } as never }), 'general.eax'],
    ['segment dpl 4', () => vm.vcpu(0).setRegisters({ segments: { cs: { dpl: 4 } } }), 'segments.cs.dpl'],
    ['unknown control register', () => vm.vcpu(0).setRegisters({ control: { cr5: 0 } as never }), 'control.cr5'],
    ['waitForStop(-1)', () => vm.waitForStop(-1), 'timeoutMs'],
  ];
  for (const [what, fn, field] of cases) {
    let thrown: unknown;
    try {
      await fn();
    } catch (err) {
      thrown = err;
    }
    t.ok(thrown instanceof InvalidConfigError && thrown.field === field, `${what} -> InvalidConfigError(${field}); got ${String(thrown)}`);
  }
  vm.onPort(0x10, 4, h);
  t.throws(() => vm.onPort(0x12, 4, h), { code: 'INVALID_CONFIG', field: 'onPort.base' }, 'overlapping port ranges');
  vm.onMmio(0xd0000000, 0x1000, h);
  t.throws(() => vm.onMmio(0xd0000800, 0x1000, h), { code: 'INVALID_CONFIG' }, 'overlapping MMIO ranges');
});

t.test('every method of a destroyed VM gives VM_DESTROYED', { skip }, async (t) => {
  const vm = kvm!.createVm({ memoryMiB: 2, vcpus: 1 });
  const vcpu = vm.vcpu(0);
  const memory = vm.memory;
  const irqVm = kvm!.createVm({ memoryMiB: 2, vcpus: 1, irqchip: true });
  const irqfd = irqVm.irqfd(5);
  const ioeventfd = vm.ioeventfd({ addr: 0x50, length: 1, space: 'pio' });
  await vm.destroy();
  await irqVm.destroy();
  t.equal(vm.state, 'destroyed');
  const calls: [string, () => unknown][] = [
    ['start', () => vm.start()],
    ['pause', () => vm.pause()],
    ['resume', () => vm.resume()],
    ['stop', () => vm.stop()],
    ['waitForStop', () => vm.waitForStop(10)],
    ['onPort', () => vm.onPort(0x10, 1, () => 0)],
    ['onMmio', () => vm.onMmio(0xd0000000, 4, () => 0)],
    ['vcpu', () => vm.vcpu(0)],
    ['vcpu.getRegisters', () => vcpu.getRegisters()],
    ['vcpu.setRegisters', () => vcpu.setRegisters({ general: { rax: 1 } })],
    ['vcpu.fd', () => vcpu.fd],
    ['memory.read', () => memory.read(0, 1)],
    ['memory.write', () => memory.write(0, Buffer.alloc(1))],
    ['memory.isRam', () => memory.isRam(0, 1)],
    ['memory.size', () => memory.size],
    ['memory.regions', () => memory.regions()],
    ['irqLine', () => vm.irqLine(4, true)],
    ['irqfd', () => vm.irqfd(4)],
    ['irqfd.trigger', () => irqfd.trigger()],
    ['ioeventfd', () => vm.ioeventfd({ addr: 0x51, length: 1, space: 'pio' })],
    ['ioeventfd.take', () => ioeventfd.take()],
    ['stats', () => vm.stats()],
    ['hasIrqchip', () => vm.hasIrqchip],
    ['fd', () => vm.fd],
  ];
  for (const [name, fn] of calls) {
    let thrown: unknown;
    try {
      await fn();
    } catch (err) {
      thrown = err;
    }
    t.ok(thrown instanceof BulkheadError && thrown.code === 'VM_DESTROYED', `${name}: ${String(thrown)}`);
  }
  await vm.destroy(); // destroy() itself is idempotent, so `await using` after an explicit destroy is fine
  await vm[Symbol.asyncDispose]();
  t.equal(vm.state, 'destroyed');
});
