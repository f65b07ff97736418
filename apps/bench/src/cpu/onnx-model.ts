/**
 * ONNX models for the CPU peer benchmarks, built here (no exporter, no files): a minimal protobuf writer
 * for the few ModelProto fields the graphs need, and one builder per attention form onnxruntime offers:
 *   - mhaModel:       com.microsoft MultiHeadAttention, (B, N, H*D) in and out (`unidirectional` = causal)
 *   - plainModel:     the exported MatMul-Softmax-MatMul graph on (B, H, N, D), causal mask from
 *                     Trilu(ConstantOfShape(-inf)) as an exporter writes it
 *   - attention23:    opset 23 Attention on (B, H, N, D) (`is_causal`)
 *   - plainBackward:  the same plain graph's gradients (P recomputed): dq, dk, dv
 *   - matmulModel:    one MatMul (M, K) x (K, N)
 * Field numbers are those of onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto,
 * ValueInfoProto, TypeProto, TensorShapeProto).
 */

// ---- protobuf wire format ----
type Field = Uint8Array;

function varint(n: number | bigint): number[] {
  let x = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x > 0n) b |= 0x80;
    out.push(b);
  } while (x > 0n);
  return out;
}
const cat = (parts: Field[]): Field => {
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};
const fInt = (no: number, v: number | bigint): Field =>
  new Uint8Array([...varint(no << 3), ...varint(v)]);
const fBytes = (no: number, b: Field): Field =>
  cat([new Uint8Array([...varint((no << 3) | 2), ...varint(b.length)]), b]);
const fStr = (no: number, s: string): Field => fBytes(no, new TextEncoder().encode(s));
const fF32 = (no: number, v: number): Field => {
  const b = new Uint8Array(5);
  b[0] = (no << 3) | 5;
  new DataView(b.buffer).setFloat32(1, v, true);
  return b;
};

// ---- ONNX messages ----
const FLOAT = 1;
const INT64 = 7;

function tensorType(shape: readonly number[], elem = FLOAT): Field {
  const dims = shape.map((d) => fBytes(1, fInt(1, d))); // Dimension.dim_value
  const tensor = cat([fInt(1, elem), fBytes(2, cat(dims))]); // TypeProto.Tensor
  return fBytes(1, tensor); // TypeProto.tensor_type
}
const valueInfo = (name: string, shape: readonly number[]): Field =>
  cat([fStr(1, name), fBytes(2, tensorType(shape))]);

type Attr = { name: string } & ({ i: number } | { f: number } | { t: Field } | { ints: number[] });
function attribute(a: Attr): Field {
  const parts = [fStr(1, a.name)];
  if ('i' in a) parts.push(fInt(3, a.i), fInt(20, 2));
  else if ('f' in a) parts.push(fF32(2, a.f), fInt(20, 1));
  else if ('t' in a) parts.push(fBytes(5, a.t), fInt(20, 4));
  else parts.push(...a.ints.map((v) => fInt(8, v)), fInt(20, 7));
  return cat(parts);
}

/** TensorProto with raw little-endian data. */
function tensorProto(name: string, dims: number[], data: Float32Array | BigInt64Array): Field {
  const elem = data instanceof Float32Array ? FLOAT : INT64;
  return cat([
    ...dims.map((d) => fInt(1, d)),
    fInt(2, elem),
    fStr(8, name),
    fBytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength)),
  ]);
}

interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  domain?: string;
  attrs?: Attr[];
}
const nodeProto = (n: Node, i: number): Field =>
  cat([
    ...n.inputs.map((x) => fStr(1, x)),
    ...n.outputs.map((x) => fStr(2, x)),
    fStr(3, `n${i}`),
    fStr(4, n.op),
    ...(n.attrs ?? []).map((a) => fBytes(5, attribute(a))),
    ...(n.domain ? [fStr(7, n.domain)] : []),
  ]);

function model(
  nodes: Node[],
  inputs: Array<[string, number[]]>,
  outputs: Array<[string, number[]]>,
  opsets: Array<[string, number]>,
  irVersion: number,
  initializers: Field[] = [],
): Uint8Array {
  const graph = cat([
    ...nodes.map((n, i) => fBytes(1, nodeProto(n, i))),
    fStr(2, 'g'),
    ...initializers.map((t) => fBytes(5, t)),
    ...inputs.map(([n, s]) => fBytes(11, valueInfo(n, s))),
    ...outputs.map(([n, s]) => fBytes(12, valueInfo(n, s))),
  ]);
  return cat([
    fInt(1, irVersion),
    fStr(2, 'flashattn-bench'),
    fBytes(7, graph),
    ...opsets.map(([d, v]) => fBytes(8, cat([fStr(1, d), fInt(2, v)]))),
  ]);
}

export interface AttnDims {
  B: number;
  H: number;
  N: number;
  D: number;
  causal: boolean;
}

/** com.microsoft MultiHeadAttention: query, key, value (B, N, H*D) -> out (B, N, H*D). */
export function mhaModel({ B, H, N, D, causal }: AttnDims): Uint8Array {
  const s = [B, N, H * D];
  return model(
    [
      {
        op: 'MultiHeadAttention',
        domain: 'com.microsoft',
        inputs: ['q', 'k', 'v'],
        outputs: ['out'],
        attrs: [
          { name: 'num_heads', i: H },
          { name: 'unidirectional', i: causal ? 1 : 0 },
        ],
      },
    ],
    [
      ['q', s],
      ['k', s],
      ['v', s],
    ],
    [['out', s]],
    [
      ['', 17],
      ['com.microsoft', 1],
    ],
    8,
  );
}

/** Scores, scaled and masked, then softmax: the nodes shared by the plain forward and backward. */
function plainProbs({ N, D, causal }: AttnDims): { nodes: Node[]; init: Field[] } {
  const nodes: Node[] = [
    {
      op: 'Transpose',
      inputs: ['k'],
      outputs: ['kT'],
      attrs: [{ name: 'perm', ints: [0, 1, 3, 2] }],
    },
    { op: 'MatMul', inputs: ['q', 'kT'], outputs: ['s0'] },
    { op: 'Mul', inputs: ['s0', 'scale'], outputs: ['s1'] },
  ];
  const init = [tensorProto('scale', [], new Float32Array([1 / Math.sqrt(D)]))];
  if (causal) {
    init.push(tensorProto('nn', [2], new BigInt64Array([BigInt(N), BigInt(N)])));
    init.push(tensorProto('one', [], new BigInt64Array([1n])));
    nodes.push(
      {
        op: 'ConstantOfShape',
        inputs: ['nn'],
        outputs: ['full'],
        attrs: [{ name: 'value', t: tensorProto('v', [1], new Float32Array([-Infinity])) }],
      },
      { op: 'Trilu', inputs: ['full', 'one'], outputs: ['mask'], attrs: [{ name: 'upper', i: 1 }] },
      { op: 'Add', inputs: ['s1', 'mask'], outputs: ['s2'] },
    );
  } else nodes.push({ op: 'Identity', inputs: ['s1'], outputs: ['s2'] });
  nodes.push({ op: 'Softmax', inputs: ['s2'], outputs: ['p'], attrs: [{ name: 'axis', i: -1 }] });
  return { nodes, init };
}

/** The exported MatMul-Softmax-MatMul graph: q, k, v (B, H, N, D) -> out (B, H, N, D). */
export function plainModel(d: AttnDims): Uint8Array {
  const s = [d.B, d.H, d.N, d.D];
  const { nodes, init } = plainProbs(d);
  nodes.push({ op: 'MatMul', inputs: ['p', 'v'], outputs: ['out'] });
  return model(
    nodes,
    [
      ['q', s],
      ['k', s],
      ['v', s],
    ],
    [['out', s]],
    [['', 17]],
    8,
    init,
  );
}

/** The plain graph's backward: q, k, v, dout (B, H, N, D) -> dq, dk, dv, recomputing P. */
export function plainBackwardModel(d: AttnDims): Uint8Array {
  const s = [d.B, d.H, d.N, d.D];
  const { nodes, init } = plainProbs(d);
  init.push(tensorProto('lastAxis', [1], new BigInt64Array([-1n])));
  const perm = [{ name: 'perm', ints: [0, 1, 3, 2] }];
  nodes.push(
    { op: 'Transpose', inputs: ['p'], outputs: ['pT'], attrs: perm },
    { op: 'MatMul', inputs: ['pT', 'dout'], outputs: ['dv'] }, // dV = P^T dO
    { op: 'Transpose', inputs: ['v'], outputs: ['vT'], attrs: perm },
    { op: 'MatMul', inputs: ['dout', 'vT'], outputs: ['dp'] }, // dP = dO V^T
    { op: 'Mul', inputs: ['dp', 'p'], outputs: ['pdp'] },
    {
      op: 'ReduceSum',
      inputs: ['pdp', 'lastAxis'],
      outputs: ['rs'],
      attrs: [{ name: 'keepdims', i: 1 }],
    },
    { op: 'Sub', inputs: ['dp', 'rs'], outputs: ['dpc'] },
    { op: 'Mul', inputs: ['p', 'dpc'], outputs: ['ds0'] },
    { op: 'Mul', inputs: ['ds0', 'scale'], outputs: ['ds'] }, // dS = scale P * (dP - rowsum(P dP))
    { op: 'MatMul', inputs: ['ds', 'k'], outputs: ['dq'] },
    { op: 'Transpose', inputs: ['ds'], outputs: ['dsT'], attrs: perm },
    { op: 'MatMul', inputs: ['dsT', 'q'], outputs: ['dk'] },
  );
  return model(
    nodes,
    [
      ['q', s],
      ['k', s],
      ['v', s],
      ['dout', s],
    ],
    [
      ['dq', s],
      ['dk', s],
      ['dv', s],
    ],
    [['', 17]],
    8,
    init,
  );
}

/** Opset 23 Attention on (B, H, N, D) inputs. */
export function attention23Model({ B, H, N, D, causal }: AttnDims): Uint8Array {
  const s = [B, H, N, D];
  return model(
    [
      {
        op: 'Attention',
        inputs: ['q', 'k', 'v'],
        outputs: ['out'],
        attrs: [{ name: 'is_causal', i: causal ? 1 : 0 }],
      },
    ],
    [
      ['q', s],
      ['k', s],
      ['v', s],
    ],
    [['out', s]],
    [['', 23]],
    11,
  );
}

/** One MatMul: a (M, K) x b (K, N) -> c (M, N). */
export function matmulModel(M: number, N: number, K: number): Uint8Array {
  return model(
    [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['c'] }],
    [
      ['a', [M, K]],
      ['b', [K, N]],
    ],
    [['c', [M, N]]],
    [['', 17]],
    8,
  );
}
