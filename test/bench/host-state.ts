/**
 * A snapshot of everything a benchmark run could leave behind on the host, for before/after checks:
 * network interfaces, iptables rules, the IP forwarding sysctl, mounts, Docker cgroups, and the
 * processes of the runtimes we drive.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

export interface HostState {
  links: string[];
  iptables: string;
  ipForward: string;
  mounts: string[];
  dockerCgroups: string[];
  runtimePids: string[];
}

const RUNTIME_PROCESS = /^(dockerd|containerd|containerd-shim.*|docker-proxy|runc|crun|runsc.*|workload|exe)$/;

function out(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? r.stdout : `(${cmd} failed: ${r.stderr})`;
}

export function hostState(): HostState {
  const runtimePids: string[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const comm = fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      // Zombies are not leftovers: they wait for init to reap them (runsc's exit leaves a few for a moment).
      const state = fs.readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.[0];
      if (RUNTIME_PROCESS.test(comm) && state !== 'Z') runtimePids.push(`${entry}:${comm}`);
    } catch {
      // exited
    }
  }
  let dockerCgroups: string[] = [];
  try {
    dockerCgroups = fs.readdirSync('/sys/fs/cgroup').filter((c) => fs.existsSync(`/sys/fs/cgroup/${c}/docker`));
  } catch {
    dockerCgroups = [];
  }
  return {
    links: out('ip', ['-o', 'link', 'show']).split('\n').map((l) => l.split(':')[1]?.trim() ?? '').filter(Boolean).sort(),
    iptables: out('iptables', ['-S']) + out('iptables', ['-t', 'nat', '-S']),
    ipForward: fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(),
    mounts: fs.readFileSync('/proc/mounts', 'utf8').split('\n').filter(Boolean).sort(),
    dockerCgroups,
    runtimePids: runtimePids.sort(),
  };
}
