/**
 * The ops conformance cases, as data: every op forward and backward, with odd sizes, vocabularies that
 * are not a multiple of any tile (1, 3, 67, 1031), zero rows, large and tiny magnitudes, ignored
 * targets, every transpose / accumulate / bias combination, aliasing where the contract allows it,
 * and (`views`) every operand a view at a non-zero offset of a shared buffer. Each case runs in every
 * float dtype the backend lists.
 */
import type { AdamWStep } from '@flashattn/core';
import {
  adamwProblem,
  adamwFromProblem,
  sumToProblem,
  addProblem,
  biasBackwardProblem,
  embeddingBackwardProblem,
  embeddingForwardProblem,
  geluBackwardProblem,
  geluForwardProblem,
  layernormBackwardProblem,
  layernormForwardProblem,
  matmulGeluProblem,
  matmulProblem,
  scaleProblem,
  softmaxCrossEntropyProblem,
  sumProblem,
  type Draw,
  type Magnitude,
  type OpName,
  type OpProblem,
} from './problems.js';

export interface OpsCase {
  /** Unique and stable: `matmul M5 N7 K3 transA acc views`. */
  readonly id: string;
  readonly op: OpName;
  readonly mag: Magnitude;
  /** Every buffer is a view at a non-zero offset of one shared allocation per dtype (views of views). */
  readonly views: boolean;
  build(d: Draw): OpProblem;
}

export type OpsMatrixName = 'ci' | 'full';
export const OPS_MATRIX_NAMES: readonly OpsMatrixName[] = ['ci', 'full'];

const NORMAL: Magnitude = { std: 1 };
/** Large: std 30 (products ~1e3, float16's 65504 kept with headroom for K <= 67 sums). */
const LARGE: Magnitude = { std: 30 };
/** Tiny: std 1e-3 (float16 products ~1e-6 are subnormal: absolute error 2^-25). */
const TINY: Magnitude = { std: 1e-3 };
/** LayerNorm inputs with mean 300 and spread 1: x - mean cancels 8 bits. */
const SHIFTED: Magnitude = { std: 1, shift: 300 };

const magTag = (m: Magnitude): string =>
  m === NORMAL ? '' : m === LARGE ? ' large' : m === TINY ? ' tiny' : ` shift${m.shift}`;

const STEP1: AdamWStep = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, t: 1 };
const STEP7: AdamWStep = { lr: 3e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, t: 7 };

function ciCases(): OpsCase[] {
  const out: OpsCase[] = [];
  const add = (
    op: OpName,
    what: string,
    build: (d: Draw) => OpProblem,
    o: { mag?: Magnitude; views?: boolean } = {},
  ): void => {
    const mag = o.mag ?? NORMAL;
    const views = o.views ?? false;
    out.push({ id: `${op} ${what}${magTag(mag)}${views ? ' views' : ''}`, op, mag, views, build });
  };

  // matmul: every transpose x accumulate/bias combination on odd sizes, M = 0, a vocab-sized N.
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      for (const mode of ['', 'acc', 'bias'] as const) {
        const s = {
          M: 5,
          N: 7,
          K: 3,
          transA,
          transB,
          accumulate: mode === 'acc',
          bias: mode === 'bias',
        };
        const tag = `M5 N7 K3${transA ? ' transA' : ''}${transB ? ' transB' : ''}${mode ? ` ${mode}` : ''}`;
        add('matmul', tag, (d) => matmulProblem(d, s));
      }
    }
  }
  add('matmul', 'M17 N33 K67 bias', (d) => matmulProblem(d, { M: 17, N: 33, K: 67, bias: true }), {
    mag: LARGE,
  });
  add(
    'matmul',
    'M9 N13 K31 transA acc',
    (d) => matmulProblem(d, { M: 9, N: 13, K: 31, transA: true, accumulate: true }),
    {
      mag: TINY,
    },
  );
  add('matmul', 'M3 N1031 K17 transB', (d) =>
    matmulProblem(d, { M: 3, N: 1031, K: 17, transB: true }),
  );
  add('matmul', 'M0 N7 K5 bias', (d) => matmulProblem(d, { M: 0, N: 7, K: 5, bias: true }));
  // The GELU epilogues (GPT-2's MLP: fc forward with bias, fc-proj's input gradient with transB).
  add('matmul', 'M33 N40 K24 bias gelu', (d) =>
    matmulGeluProblem(d, { M: 33, N: 40, K: 24, bias: true, kind: 'gelu' }),
  );
  add(
    'matmul',
    'M7 N9 K5 transA gelu',
    (d) => matmulGeluProblem(d, { M: 7, N: 9, K: 5, transA: true, kind: 'gelu' }),
    { mag: LARGE, views: true },
  );
  add('matmul', 'M17 N66 K33 transB dgelu', (d) =>
    matmulGeluProblem(d, { M: 17, N: 66, K: 33, transB: true, kind: 'dgelu' }),
  );
  add(
    'matmul',
    'M5 N7 K3 dgelu',
    (d) => matmulGeluProblem(d, { M: 5, N: 7, K: 3, kind: 'dgelu' }),
    { mag: TINY, views: true },
  );
  add(
    'matmul',
    'M6 N5 K11 transB acc',
    (d) => matmulProblem(d, { M: 6, N: 5, K: 11, transB: true, accumulate: true }),
    {
      views: true,
    },
  );
  add(
    'matmul',
    'M4 N9 K7 transA bias',
    (d) => matmulProblem(d, { M: 4, N: 9, K: 7, transA: true, bias: true }),
    {
      views: true,
    },
  );

  add('biasBackward', 'M13 N67', (d) => biasBackwardProblem(d, 13, 67));
  add('biasBackward', 'M0 N5', (d) => biasBackwardProblem(d, 0, 5));
  add('biasBackward', 'M31 N9', (d) => biasBackwardProblem(d, 31, 9), { mag: LARGE, views: true });

  for (const V of [1, 3, 67, 1031]) {
    const mag = V === 67 ? LARGE : V === 1031 ? TINY : NORMAL;
    add('embeddingForward', `B2 T5 C7 V${V}`, (d) => embeddingForwardProblem(d, 2, 5, 7, V), {
      mag,
    });
    add('embeddingBackward', `B2 T5 C7 V${V}`, (d) => embeddingBackwardProblem(d, 2, 5, 7, V), {
      mag,
    });
  }
  add('embeddingForward', 'B0 T3 C4 V3', (d) => embeddingForwardProblem(d, 0, 3, 4, 3));
  add('embeddingBackward', 'B0 T3 C4 V3', (d) => embeddingBackwardProblem(d, 0, 3, 4, 3));
  add('embeddingForward', 'B3 T4 C9 V11', (d) => embeddingForwardProblem(d, 3, 4, 9, 11), {
    views: true,
  });
  add('embeddingBackward', 'B3 T4 C9 V3', (d) => embeddingBackwardProblem(d, 3, 4, 9, 3), {
    views: true,
  });

  for (const [N, C, mag, views] of [
    [5, 7, NORMAL, false],
    [3, 67, SHIFTED, false],
    [4, 33, TINY, false],
    [7, 1031, LARGE, false],
    [0, 5, NORMAL, false],
    [6, 13, NORMAL, true],
  ] as const) {
    add('layernormForward', `N${N} C${C}`, (d) => layernormForwardProblem(d, N, C), { mag, views });
    add('layernormBackward', `N${N} C${C}`, (d) => layernormBackwardProblem(d, N, C), {
      mag,
      views,
    });
  }

  add('geluForward', 'n1031', (d) => geluForwardProblem(d, 1031, false), { mag: { std: 3 } });
  add('geluForward', 'n67 in-place', (d) => geluForwardProblem(d, 67, true));
  add('geluForward', 'n67', (d) => geluForwardProblem(d, 67, false), { mag: LARGE });
  add('geluForward', 'n33', (d) => geluForwardProblem(d, 33, false), { mag: TINY, views: true });
  add('geluForward', 'n0', (d) => geluForwardProblem(d, 0, false));
  add('geluBackward', 'n1031', (d) => geluBackwardProblem(d, 1031, false), { mag: { std: 3 } });
  add('geluBackward', 'n67 dinp=dout', (d) => geluBackwardProblem(d, 67, true));
  add('geluBackward', 'n67', (d) => geluBackwardProblem(d, 67, false), { mag: LARGE, views: true });
  add('geluBackward', 'n0', (d) => geluBackwardProblem(d, 0, false));

  add('add', 'n1031', (d) => addProblem(d, 1031, 'none'));
  add('add', 'n67 out=a', (d) => addProblem(d, 67, 'a'));
  add('add', 'n67 out=b', (d) => addProblem(d, 67, 'b'), { mag: LARGE });
  add('add', 'n33', (d) => addProblem(d, 33, 'none'), { mag: TINY, views: true });
  add('add', 'n0', (d) => addProblem(d, 0, 'none'));

  add('softmaxCrossEntropy', 'N5 V1', (d) => softmaxCrossEntropyProblem(d, { N: 5, V: 1 }));
  add('softmaxCrossEntropy', 'N6 V3 ignore', (d) =>
    softmaxCrossEntropyProblem(d, { N: 6, V: 3, ignoreEvery: 2 }),
  );
  add(
    'softmaxCrossEntropy',
    'N7 V67',
    (d) => softmaxCrossEntropyProblem(d, { N: 7, V: 67, ignoreEvery: 3 }),
    {
      mag: LARGE,
    },
  );
  add('softmaxCrossEntropy', 'N3 V1031 in-place', (d) =>
    softmaxCrossEntropyProblem(d, { N: 3, V: 1031, inPlace: true }),
  );
  add('softmaxCrossEntropy', 'N4 V67 no-grad', (d) =>
    softmaxCrossEntropyProblem(d, { N: 4, V: 67, noGrad: true, ignoreEvery: 4 }),
  );
  add('softmaxCrossEntropy', 'N0 V67', (d) => softmaxCrossEntropyProblem(d, { N: 0, V: 67 }));
  // The padded vocabulary (Vp > V: rows Vp apart, padding columns not read, their gradient 0): rows of whole
  // 16-byte vectors (Vp 72, 1088) and not (Vp 37), in place and without the gradient.
  add('softmaxCrossEntropy', 'N6 V67 Vp72 ignore', (d) =>
    softmaxCrossEntropyProblem(d, { N: 6, V: 67, Vp: 72, ignoreEvery: 4 }),
  );
  add('softmaxCrossEntropy', 'N3 V1031 Vp1088 in-place', (d) =>
    softmaxCrossEntropyProblem(d, { N: 3, V: 1031, Vp: 1088, inPlace: true }),
  );
  add('softmaxCrossEntropy', 'N4 V67 Vp72 no-grad', (d) =>
    softmaxCrossEntropyProblem(d, { N: 4, V: 67, Vp: 72, noGrad: true }),
  );
  add(
    'softmaxCrossEntropy',
    'N5 V33 Vp37',
    (d) => softmaxCrossEntropyProblem(d, { N: 5, V: 33, Vp: 37, ignoreEvery: 3 }),
    { mag: LARGE },
  );
  add(
    'softmaxCrossEntropy',
    'N5 V33 ignore',
    (d) => softmaxCrossEntropyProblem(d, { N: 5, V: 33, ignoreEvery: 2 }),
    {
      mag: TINY,
      views: true,
    },
  );

  add('sum', 'n1031', (d) => sumProblem(d, 1031, false));
  add('sum', 'n0', (d) => sumProblem(d, 0, false));
  add('sum', 'n67', (d) => sumProblem(d, 67, false), { mag: LARGE, views: true });
  add('sumSquares', 'n1031', (d) => sumProblem(d, 1031, true));
  add('sumSquares', 'n67', (d) => sumProblem(d, 67, true), { mag: TINY, views: true });
  add('sumSquares', 'n0', (d) => sumProblem(d, 0, true));
  add('scale', 'n67 s0.37', (d) => scaleProblem(d, 67, 0.37));
  add('scale', 'n33 s-3', (d) => scaleProblem(d, 33, -3), { mag: LARGE, views: true });

  add('adamw', 'n1031 t1', (d) => adamwProblem(d, 1031, STEP1));
  add('adamw', 'n67 t7 wd', (d) => adamwProblem(d, 67, STEP7), { mag: LARGE });
  add('adamw', 'n33 t7 wd', (d) => adamwProblem(d, 33, STEP7), { mag: TINY, views: true });

  // DeviceStepOps (optional: skipped where the backend has none)
  add('sumTo', 'n1031', (d) => sumToProblem(d, 1031, false, false));
  add('sumTo', 'n67 squares accumulate', (d) => sumToProblem(d, 67, true, true), {
    mag: LARGE,
    views: true,
  });
  add('sumTo', 'n0 accumulate', (d) => sumToProblem(d, 0, false, true));
  add('adamwFrom', 'n1031 t1', (d) => adamwFromProblem(d, 1031, STEP1));
  add('adamwFrom', 'n0 t1', (d) => adamwFromProblem(d, 0, STEP1));
  add(
    'adamwFrom',
    'n67 t7 wd clipped K3',
    (d) => adamwFromProblem(d, 67, STEP7, { maxNorm: 1, K: 3, norm: 4.5 }),
    { mag: LARGE },
  );
  add(
    'adamwFrom',
    'n33 t7 wd unclipped K2',
    (d) => adamwFromProblem(d, 33, STEP7, { maxNorm: 1, K: 2, norm: 0.25 }),
    { mag: TINY, views: true },
  );
  return out;
}

/** `full`: ci plus GPT-2-sized shapes (C = 768, V = 50257 rows of a few tokens). For GPUs. */
function fullCases(): OpsCase[] {
  const ci = ciCases();
  const big: OpsCase[] = [
    {
      id: 'matmul M64 N2304 K768 bias',
      op: 'matmul',
      mag: NORMAL,
      views: false,
      build: (d) => matmulProblem(d, { M: 64, N: 2304, K: 768, bias: true }),
    },
    {
      id: 'matmul M768 N768 K64 transA acc',
      op: 'matmul',
      mag: NORMAL,
      views: false,
      build: (d) => matmulProblem(d, { M: 768, N: 768, K: 64, transA: true, accumulate: true }),
    },
    {
      id: 'softmaxCrossEntropy N4 V50257',
      op: 'softmaxCrossEntropy',
      mag: NORMAL,
      views: false,
      build: (d) => softmaxCrossEntropyProblem(d, { N: 4, V: 50257, ignoreEvery: 3 }),
    },
    {
      id: 'softmaxCrossEntropy N4 V50257 Vp50304',
      op: 'softmaxCrossEntropy',
      mag: NORMAL,
      views: false,
      build: (d) => softmaxCrossEntropyProblem(d, { N: 4, V: 50257, Vp: 50304, ignoreEvery: 3 }),
    },
    {
      id: 'layernormBackward N64 C768',
      op: 'layernormBackward',
      mag: NORMAL,
      views: false,
      build: (d) => layernormBackwardProblem(d, 64, 768),
    },
    {
      id: 'adamw n124447',
      op: 'adamw',
      mag: NORMAL,
      views: false,
      build: (d) => adamwProblem(d, 124447, STEP7),
    },
  ];
  return [...ci, ...big];
}

export const OPS_CASES: Readonly<Record<OpsMatrixName, readonly OpsCase[]>> = Object.freeze({
  ci: Object.freeze(ciCases()),
  full: Object.freeze(fullCases()),
});

export function opsCasesFor(matrix: OpsMatrixName): readonly OpsCase[] {
  const c = (OPS_CASES as Record<string, readonly OpsCase[]>)[matrix];
  if (!c)
    throw new RangeError(
      `Unknown ops matrix '${String(matrix)}': expected one of ${OPS_MATRIX_NAMES.join(', ')}`,
    );
  return c;
}
