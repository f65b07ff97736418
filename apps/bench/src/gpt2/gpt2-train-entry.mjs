/**
 * Entry of the bundled trainer for the GPU machine (bundle.mjs --train -> .bundle-gpt2/gpt2-train.mjs; plain JS, so typechecking bench needs no build of gpt2-train):
 * the backends' providers imported statically (a bundle has no node_modules for discoverBackends() to
 * scan), then apps/gpt2-train's CLI, unchanged (its flags, checkpoints and outputs as documented there).
 */
import '@flashattn/cpu/provider';
import '@flashattn/cuda/provider';
import '@flashattn/webgpu/provider';
import '../../../gpt2-train/dist/main.js';
