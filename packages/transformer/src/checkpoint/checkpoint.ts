/**
 * Training checkpoints as safetensors with Hugging Face GPT-2 tensor names (so GPT-2 weights load and
 * our weights load in HF), plus the AdamW moments as extra tensors (`optimizer.exp_avg.<name>`,
 * `optimizer.exp_avg_sq.<name>`) and the loop state in __metadata__ (step, data position, RNG state,
 * config, a checksum). Loading validates everything before writing a single value into the model.
 */
import type { GPT2Config } from '../config.js';
import type { GPT2 } from '../model/gpt2.js';
import type { AdamWConfig } from '../train/adamw.js';

/**
 * What a checkpoint reads from and restores into an optimizer: AdamW, or a sharded AdamW (ZeRO-1, the
 * data-parallel trainer's) that presents the full moments.
 */
export interface CheckpointOptimizer {
  readonly t: number;
  readonly config: AdamWConfig;
  getState(): Promise<{ m: Float32Array | Float64Array; v: Float32Array | Float64Array }>;
  setState(
    m: Float32Array | Float64Array,
    v: Float32Array | Float64Array,
    t: number,
  ): Promise<void>;
}
import {
  CheckpointError,
  encodeSafetensors,
  parseSafetensors,
  type SafeData,
} from './safetensors.js';

export const CHECKPOINT_FORMAT = 'flashattn-gpt2/1';

export interface TrainState {
  /** Optimizer steps completed. */
  step: number;
  /** Where the data loader resumes (tokens into the training split). */
  dataPosition: number;
  /** The training RNG's state (core Rng.state()). */
  rngState: number;
  /** Anything else the app wants back (strings). */
  extra?: Record<string, string>;
}

/** FNV-1a over the tensor bytes: catches flipped or zeroed bytes that keep the file well-formed. */
function checksum(tensors: Map<string, { data: SafeData }>): string {
  let h = 0x811c9dc5;
  for (const [, t] of tensors) {
    const b = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

function toF32(x: SafeData): Float32Array {
  return x instanceof Float32Array ? x : Float32Array.from(x as ArrayLike<number>);
}

/** The checkpoint's bytes: parameters (and moments) are downloaded from the model's device. */
export async function encodeCheckpoint<Buf>(
  model: GPT2<Buf>,
  opt: CheckpointOptimizer | null,
  state: TrainState,
): Promise<Uint8Array> {
  const tensors = new Map<string, { shape: number[]; data: SafeData }>();
  const view = (buf: Float32Array | Float64Array, o: number, n: number): SafeData =>
    toF32(buf.subarray(o, o + n));
  const params = await model.getParams();
  for (const s of model.specs)
    tensors.set(s.name, { shape: s.shape, data: view(params, s.offset, s.size) });
  if (opt) {
    const { m, v } = await opt.getState();
    for (const s of model.specs)
      tensors.set(`optimizer.exp_avg.${s.name}`, {
        shape: s.shape,
        data: view(m, s.offset, s.size),
      });
    for (const s of model.specs)
      tensors.set(`optimizer.exp_avg_sq.${s.name}`, {
        shape: s.shape,
        data: view(v, s.offset, s.size),
      });
  }
  const metadata: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    config: JSON.stringify(model.config),
    step: String(state.step),
    data_position: String(state.dataPosition),
    rng_state: String(state.rngState >>> 0),
    optimizer: opt ? JSON.stringify({ name: 'adamw', t: opt.t, ...opt.config }) : 'none',
    checksum: checksum(tensors),
  };
  for (const [k, v] of Object.entries(state.extra ?? {})) metadata[`extra.${k}`] = v;
  return encodeSafetensors(tensors, metadata);
}

export interface LoadOptions {
  /** Require optimizer state (resume). Default: load it when the checkpoint has it and opt is given. */
  requireOptimizer?: boolean;
}

/**
 * Load into model (and opt). All-or-nothing: on any problem it throws CheckpointError and the model and
 * optimizer are untouched. Files without our metadata (e.g. Hugging Face GPT-2 weights) load as
 * weights only, checked against the model's names and shapes.
 */
export async function loadCheckpointBytes<Buf>(
  buf: Uint8Array,
  path: string,
  model: GPT2<Buf>,
  opt: CheckpointOptimizer | null = null,
  o: LoadOptions = {},
): Promise<TrainState> {
  const fail = (msg: string): never => {
    throw new CheckpointError(path, msg);
  };
  const { metadata, tensors } = parseSafetensors(buf, path);
  // Ours say format 'flashattn-gpt2/<version>'; Hugging Face files say 'pt' (weights only).
  // A recorded checksum marks the file as ours too: a corrupted format field must not turn verification off.
  const ours =
    (metadata['format']?.startsWith('flashattn-') ?? false) || metadata['checksum'] !== undefined;
  if (ours) {
    if (metadata['format'] !== CHECKPOINT_FORMAT)
      fail(`format ${metadata['format']}, expected ${CHECKPOINT_FORMAT}`);
    let cfg: GPT2Config;
    try {
      cfg = JSON.parse(metadata['config'] ?? '') as GPT2Config;
    } catch {
      return fail('metadata.config is not JSON');
    }
    const diffs = (Object.keys(model.config) as Array<keyof GPT2Config>)
      .filter((k) => cfg[k] !== model.config[k])
      .map((k) => `${k}: checkpoint ${cfg[k]} vs model ${model.config[k]}`);
    if (diffs.length) fail(`config mismatch (${diffs.join('; ')})`);
    const sum = checksum(tensors);
    if (sum !== metadata['checksum'])
      fail(`checksum ${sum} != recorded ${metadata['checksum']}: the tensor data is corrupted`);
  }
  // Every model tensor present with its exact shape.
  const expect = (name: string, shape: number[]): Float32Array | Float64Array => {
    // Hugging Face's save_pretrained of GPT2LMHeadModel names them 'transformer.<name>'.
    const t =
      tensors.get(name) ?? tensors.get(`transformer.${name}`) ?? fail(`missing tensor ${name}`);
    if (t.dtype === 'I32') fail(`tensor ${name}: dtype I32, expected F32 or F64`);
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      fail(`tensor ${name}: shape [${t.shape.join(', ')}], model expects [${shape.join(', ')}]`);
    }
    return t.data as Float32Array | Float64Array;
  };
  const weights = model.specs.map((s) => expect(s.name, s.shape));
  const hasOpt = metadata['optimizer'] !== undefined && metadata['optimizer'] !== 'none';
  if (o.requireOptimizer && !hasOpt)
    fail('no optimizer state (saved without one); cannot resume exactly');
  let moments: Array<[Float32Array | Float64Array, Float32Array | Float64Array]> | null = null;
  let optT = 0;
  if (opt && hasOpt) {
    moments = model.specs.map((s) => [
      expect(`optimizer.exp_avg.${s.name}`, s.shape),
      expect(`optimizer.exp_avg_sq.${s.name}`, s.shape),
    ]);
    try {
      optT = (JSON.parse(metadata['optimizer']!) as { t: number }).t;
    } catch {
      fail('metadata.optimizer is not JSON');
    }
    if (!Number.isInteger(optT) || optT < 0)
      fail(`optimizer step ${optT} is not a non-negative integer`);
  }
  const int = (k: string, def: number): number => {
    const v = metadata[k];
    if (v === undefined) return def;
    const x = Number(v);
    if (!Number.isInteger(x) || x < 0) fail(`metadata.${k} = ${v} is not a non-negative integer`);
    return x;
  };
  const state: TrainState = {
    step: int('step', 0),
    dataPosition: int('data_position', 0),
    rngState: int('rng_state', 0),
    extra: Object.fromEntries(
      Object.entries(metadata)
        .filter(([k]) => k.startsWith('extra.'))
        .map(([k, v]) => [k.slice(6), v]),
    ),
  };
  // Validated: now commit (assembled on the host, then one upload per buffer).
  const flat = (parts: ArrayLike<number>[]): Float32Array | Float64Array => {
    const out =
      model.paramDType === 'float64'
        ? new Float64Array(model.paramsLength)
        : new Float32Array(model.paramsLength);
    model.specs.forEach((s, i) => out.set(parts[i]!, s.offset));
    return out;
  };
  await model.setParams(flat(weights));
  if (opt && moments)
    await opt.setState(flat(moments.map((x) => x[0])), flat(moments.map((x) => x[1])), optT);
  return state;
}
