/**
 * The Xen test host: Xen 4.17 and a PV dom0 under QEMU TCG (host.ts), from Debian's packages
 * (packages.ts), with the dom0 kernel's modules (modules.ts) and its /init (init-script.ts).
 */
export { startXenHost, XEN_CPU_MODEL, type XenHostOptions } from './host';
export { ensureXenTree, XEN_PACKAGES, type XenTree } from './packages';
export { moduleLoadOrder, DOM0_MODULES, type KernelModule } from './modules';
