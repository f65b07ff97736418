export * from './portable.js';
// Node only (files): browser.ts leaves these out.
export * from './checkpoint/atomic-write.js';
export * from './checkpoint/checkpoint-file.js';
export * from './checkpoint/hf-config-file.js';
