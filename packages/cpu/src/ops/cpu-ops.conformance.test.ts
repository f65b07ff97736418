// The CPU ops backend against the conformance suites: every op of Ops<Buf> (float32 and float64 buffers)
// against core's float64 reference ops, and attention through the device-attention adapter (q, k, v and
// the gradients in contiguous, padded and packed (B, N, 3, H, D) layouts), float32, on one thread and on
// all cores. The attention forward is the default one: the native AVX2 forward where it is built and the
// CPU has AVX2 + FMA (the name printed says which), else the wasm one; the backward is wasm. The float32
// matmul is likewise the native gemm where the addon has it (matmul-native.test.ts checks that path was
// taken); the wasm gemm (native: false, the browsers' and the no-binary path) runs the matmul cases too.
import {
  describeDeviceAttentionConformance,
  describeOpsConformance,
} from '@flashattn/conformance/vitest';
import { CpuOps } from './cpu-ops.js';

describeOpsConformance('cpu ops, 2 threads', () => new CpuOps({ threads: 2 }), { matrix: 'ci' });
describeOpsConformance(
  'cpu ops, 2 threads, wasm gemm (native: false)',
  () => new CpuOps({ threads: 2, native: false }),
  { matrix: 'ci', filter: 'matmul ' },
);
describeDeviceAttentionConformance('cpu ops, 1 thread', () => new CpuOps({ threads: 1 }), {
  matrix: 'ci',
});
describeDeviceAttentionConformance('cpu ops, 2 threads', () => new CpuOps({ threads: 2 }), {
  matrix: 'ci',
});
