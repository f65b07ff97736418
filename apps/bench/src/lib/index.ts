/** Shared benchmark helpers for apps/bench scripts (CPU, WebGPU, CUDA). */
export * from './args.js';
export * from './flops.js';
export * from './memory.js';
export * from './table.js';
export * from './timing.js';
