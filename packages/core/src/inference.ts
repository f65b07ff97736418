/**
 * The inference side (issue #12): the KV-cache / split-KV / varlen contracts, their float64 oracles and
 * the CPU kernels backends run, and the per-sequence varlen driver over DeviceAttention that the device
 * backends share. One entry so core's index gains one line.
 */
export * from './contracts/kv-cache.js';
export * from './kv-cache-reference.js';
export * from './kv-cache-kernels.js';
export * from './varlen-by-sequence.js';
