// What runs anywhere (Node and browsers): no node:* imports below this file. index.ts adds the Node file helpers.
export * from './config.js';
export * from './model/params.js';
export { GPT2, type GPT2Options } from './model/gpt2.js';
export { GPT2KVCache } from './model/kv-cache.js';
export * from './model/generate.js';
export * from './model/cached-forward-check.js';
export * from './model/sampling.js';
export * from './train/adamw.js';
export * from './train/schedule.js';
export * from './train/clip.js';
export * from './train/fit-batch.js';
export * from './checkpoint/safetensors.js';
export * from './checkpoint/checkpoint.js';
export * from './checkpoint/hf-config.js';
export * from './train/flops.js';
export * from './profile/profiled-ops.js';
export * from './parallel/ring-attention.js';
export * from './train/graphed-step.js';
