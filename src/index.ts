/**
 * bulkhead: the public API. Each area keeps its own index; this file only gathers them.
 */
export * from './errors';
export * from './kvm';
export * from './host';
export * from './kernel';
export * from './bench';
