export * from './probe';
export * from './emulated';
