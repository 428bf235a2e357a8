/**
 * `bulkhead doctor [--json]`: what this host can run. Human text by default; `--json` prints the probe
 * report (see src/host/probe.ts) for machines. Exit status 0 when the probe ran, 2 on a usage error.
 */
import { probeHost, type Finding, type HostReport } from '../host/probe';
import { defineCommand } from './args';

function indent(label: string, text: string): string {
  const pad = ' '.repeat(12);
  return `${label.padEnd(12)}${text}`.replace(/\n/g, `\n${pad}`);
}

function explain(f: Finding): string[] {
  const lines = [indent('', `meaning: ${f.meaning}`)];
  if (!f.ok && f.fix) lines.push(indent('', `fix: ${f.fix}`));
  return lines;
}

const mark = (ok: boolean): string => (ok ? 'ok ' : 'no ');

export function formatReport(r: HostReport): string {
  const out: string[] = ['bulkhead doctor: what this host can run', ''];
  const z = r.zones;
  out.push(indent(`${mark(z.ok)}zones`, `backend: ${z.backend}`), ...explain(z), '');

  const k = r.kvm;
  const kvmState = !k.present
    ? '/dev/kvm missing'
    : k.accessible
      ? `/dev/kvm accessible (API ${k.apiVersion}, max ${k.maxVcpus} vCPUs)`
      : `/dev/kvm not usable (${k.reason}: ${k.detail ?? ''})`;
  out.push(indent(`${mark(k.ok)}KVM`, `${kvmState}; mode: ${k.mode}`));
  out.push(
    indent(
      '',
      `cpu: vmx=${k.cpu.vmx ? 'yes' : 'no'} svm=${k.cpu.svm ? 'yes' : 'no'}; modules: ${k.modules.join(', ') || 'none'}`,
    ),
  );
  out.push(...explain(k));
  if (k.capabilities) {
    const caps = Object.entries(k.capabilities).map(([n, v]) => `${n.replace(/^KVM_CAP_/, '')}=${v}`);
    out.push(indent('', `capabilities: ${caps.join(' ')}`));
  }
  out.push('');

  const x = r.xen;
  out.push(
    indent(
      `${mark(x.ok)}Xen`,
      `dom0: ${x.dom0 ? 'yes' : 'no'}; privcmd: ${x.privcmd ? 'yes' : 'no'}; libxenctrl: ${
        x.libxenctrl.loadable ? `loadable (${x.libxenctrl.name})` : 'not loadable'
      }${x.hypervisor ? `; Xen ${x.hypervisor.version}, ${x.hypervisor.freeMemoryMiB} MiB free` : ''}`,
    ),
  );
  const missingLibs = (x.libraries ?? []).filter((l) => !l.loaded);
  if (missingLibs.length > 0) out.push(indent('', `missing libraries: ${missingLibs.map((l) => l.soname).join(', ')}`));
  out.push(...explain(x), '');

  const v = r.vsock;
  out.push(
    indent(
      `${mark(v.ok)}vsock`,
      `/dev/vhost-vsock: ${v.vhostVsock ? 'yes' : 'no'}; /dev/vsock: ${v.vsockDevice ? 'yes' : 'no'}; AF_VSOCK: ${
        v.afVsock.ok ? 'yes' : `no (${v.afVsock.message})`
      }`,
    ),
  );
  out.push(...explain(v), '');

  const q = r.qemu;
  out.push(indent(`${mark(q.ok)}QEMU`, q.found ? `${q.path} (version ${q.version ?? 'unknown'})` : 'qemu-system-x86_64 not on PATH'));
  out.push(...explain(q), '');

  if (!r.addon.ok) {
    out.push(indent('no addon', r.addon.error ?? ''), ...explain(r.addon), '');
  }
  out.push(`verdict: ${r.verdict}`);
  return out.join('\n') + '\n';
}

export const command = defineCommand({
  name: 'doctor',
  summary: 'what this host can run: KVM and its mode, Xen, vsock, QEMU for the emulated host',
  options: { json: { type: 'boolean', description: 'print the probe report as JSON (for machines)' } },
  async run({ values }) {
    const report = await probeHost();
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
    return 0;
  },
});
