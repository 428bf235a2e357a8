/**
 * bulkhead/xen: Xen from TypeScript, through Xen's own control libraries (loaded at run time).
 *
 *   const libs = xenLibraries();        // which of libxenctrl, libxenstore, … this process can use
 *   const host = xenHostInfo();         // in dom0: version, free memory, domains and their state
 *   using xs = XenStore.open();         // read/write/ls/perms, watches, transactions
 *   using ch = EventChannel.open();     // ports, notify, events as an async iterator
 *   using gt = GrantTable.open();       // share pages, map grants (bounds-checked copies)
 *   pauseDomain(id); await domainDeath(id);   // existing domains by id
 *   await setDomainMemory(id, 96); await setDomainVcpus(id, 1);   // xl mem-set, xl vcpu-set
 */
export { xenLibraries, requireXenLibraries, type XenLibrary, type XenLibraryName } from './libraries';
export { xenHostInfo, domainState, type XenHostInfo, type XenDomainInfo, type XenDomainState } from './host';
export {
  XenStore,
  XenStoreWatch,
  XenStoreNoEntryError,
  XenStoreConflictError,
  XENSTORE_PAYLOAD_MAX,
  type XenStoreOps,
  type XenStorePermission,
  type TransactionOptions,
} from './xenstore';
export { EventChannel } from './event-channel';
export { domainInfo, findDomain, pauseDomain, unpauseDomain, destroyDomain, domainDeath, type DomainEnd } from './domain';
export { setDomainMemory, setDomainVcpus, DOMAIN_MIN_MEMORY_MIB, MAXMEM_SLACK_KIB } from './domain-resources';
export { GrantTable, GrantRegion, XEN_PAGE_SIZE, GRANT_MAX_PAGES } from './grant-table';
export { ConsoleRing } from './console-ring';
export { createPvDomain, createPvDomainAsync, PvDomain, XenDomainBuildError, PV_MAX_VCPUS, type PvDomainConfig, type PvBuildStage } from './build-domain';
export { DOMID_MAX } from './domid';
export { XenUnavailableError, XenCallError, XenNoSuchDomainError, XenGrantRefError } from './errors';
