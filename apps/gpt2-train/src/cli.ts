/** Flags parsed against a schema; unknown flags and bad values are errors (exit code 2). */
import { PRESETS, type PresetName } from './configs.js';

type Kind = 'int' | 'float' | 'string' | 'bool' | { oneOf: readonly string[] };

interface FlagSpec {
  kind: Kind;
  help: string;
  min?: number;
}

export const SCHEMA = {
  config: {
    kind: { oneOf: Object.keys(PRESETS) },
    help: 'model preset: tiny, small, gpt2-124m, gpt2-350m (24 layers, 16 heads, 1024), gpt2-124m-8k (124M shape with 8192 positions: wpe grows to 8192 x 768, 129.9M params; train with --seq 4096 or 8192); default tiny',
  },
  attention: {
    kind: { oneOf: ['flash', 'standard'] },
    help: 'flash = tiled O(N) memory; standard = materialised scores; default flash',
  },
  backend: {
    kind: 'string',
    help: "ops backend: cuda, webgpu, cpu (any installed backend with device ops) or 'auto' (the most preferred available one; prints why each candidate was taken or passed over); default cpu",
  },
  dtype: {
    kind: { oneOf: ['fp32', 'bf16', 'fp16'] },
    help: "fp32, or mixed precision bf16/fp16: fp32 master weights and AdamW state, 16-bit compute copy, activations and gradients (refused where the backend lacks the dtype); default fp32 (a resumed run: the checkpoint's)",
  },
  'total-batch': {
    kind: 'int',
    min: 1,
    help: 'tokens per optimizer step, reached by gradient accumulation over total/(batch*seq) micro-steps (a multiple of batch*seq); default batch*seq',
  },
  'peak-tflops': {
    kind: 'float',
    min: 0,
    help: 'device peak (TFLOP/s) for MFU; default looked up from the device name (H100/H200 SXM: bf16 989.5, fp32 67), else MFU is omitted',
  },
  steps: {
    kind: 'int',
    min: 0,
    help: 'optimizer steps to reach (total, counting resumed ones); default per preset',
  },
  batch: { kind: 'int', min: 1, help: 'sequences per step; default per preset' },
  seq: { kind: 'int', min: 2, help: 'tokens per sequence; default per preset' },
  lr: {
    kind: 'float',
    min: 0,
    help: 'peak learning rate (cosine decay to lr/10 after warmup); default per preset',
  },
  warmup: { kind: 'int', min: 0, help: 'warmup steps; default min(100, steps/10)' },
  out: {
    kind: 'string',
    help: 'output directory (checkpoint, loss curve, log); default runs/<config>',
  },
  resume: { kind: 'bool', help: 'continue from <out>/checkpoint.safetensors' },
  overwrite: {
    kind: 'bool',
    help: 'start a new run even if <out> already holds a checkpoint (it is replaced)',
  },
  seed: { kind: 'int', min: 0, help: 'seed for init and sampling; default 1337' },
  sample: { kind: 'string', help: 'prompt for the sample printed at the end; default "The"' },
  temperature: { kind: 'float', min: 0, help: 'sampling temperature; default 0.8' },
  'top-k': {
    kind: 'int',
    min: 0,
    help: 'sample from the k most likely tokens (0 = all); default 40',
  },
  'sample-tokens': { kind: 'int', min: 0, help: 'tokens to sample (0 = no sample); default 80' },
  'eval-every': {
    kind: 'int',
    min: 0,
    help: 'validation loss every N steps (0 = only at the end); default 50',
  },
  'val-batches': { kind: 'int', min: 1, help: 'batches per validation estimate; default 8' },
  'ckpt-every': {
    kind: 'int',
    min: 0,
    help: 'checkpoint every N steps (0 = only at the end); default 100',
  },
  'plot-every': {
    kind: 'int',
    min: 0,
    help: 'rewrite the loss-curve PNG every N steps (0 = end and SIGUSR1 only); default 0',
  },
  threads: {
    kind: 'int',
    min: 1,
    help: 'matmul threads; default all cores (divided among --workers)',
  },
  workers: {
    kind: 'int',
    min: 1,
    help: 'data parallel over N processes on this host (the CPU transport: Unix sockets): the --total-batch micro-steps dealt out, gradients all-reduced, AdamW state sharded (ZeRO-1); default 1',
  },
  gpus: {
    kind: 'string',
    help: 'N|all: data parallel over N GPUs of this host with --backend cuda (one process per GPU, NCCL); default 1',
  },
  'collective-timeout': {
    kind: 'float',
    min: 0,
    help: 'seconds a rank waits for another before the job fails naming it (--workers/--gpus); default 60',
  },
  'bucket-mb': {
    kind: 'float',
    min: 0,
    help: 'gradient all-reduce bucket size in MB (--workers/--gpus); default 25 (PyTorch DDP)',
  },
  'stop-after': {
    kind: 'int',
    min: 1,
    help: 'stop cleanly after step N as on Ctrl-C (checkpoint, plot; --resume continues the same run)',
  },
  deterministic: {
    kind: 'bool',
    help: "--backend cuda: attention's dQ without float atomics, so a run (and its resume) repeats bit for bit",
  },
  graphs: {
    kind: { oneOf: ['auto', 'on', 'off'] },
    help: "record the step once and replay it (CUDA graphs; the loss and clip stay on the device, one read-back per step): on, off, or auto = on where the backend has them (cuda) and the run is one process; default auto (a resumed run: the checkpoint's)",
  },
  json: { kind: 'bool', help: 'print one JSON summary line at the end (for benchmarks)' },
  help: { kind: 'bool', help: 'show this help' },
} as const satisfies Record<string, FlagSpec>;

export type Flag = keyof typeof SCHEMA;

export interface Args {
  config: PresetName;
  attention: 'flash' | 'standard';
  backend: string;
  /** Undefined: fp32, or the checkpoint's on --resume. */
  dtype?: 'fp32' | 'bf16' | 'fp16';
  totalBatch?: number;
  peakTflops?: number;
  steps?: number;
  batch?: number;
  seq?: number;
  lr?: number;
  warmup?: number;
  out?: string;
  resume: boolean;
  overwrite: boolean;
  seed: number;
  sample: string;
  temperature: number;
  topK: number;
  sampleTokens: number;
  evalEvery: number;
  valBatches: number;
  ckptEvery: number;
  plotEvery: number;
  threads?: number;
  /** Ranks (processes) of the data-parallel job: --workers, or --gpus resolved by the launcher. */
  workers: number;
  /** --gpus as given (N or 'all'), for --backend cuda. */
  gpus?: string;
  /** Seconds. */
  collectiveTimeout: number;
  bucketMb: number;
  /** Stop after this step as on SIGINT (checkpoint and plot written). */
  stopAfter?: number;
  /** CUDA: deterministic attention backward (createCudaOps({ deterministic: true })). */
  deterministic: boolean;
  /** Undefined: auto, or the checkpoint's on --resume. */
  graphs?: 'auto' | 'on' | 'off';
  json: boolean;
  help: boolean;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export function usage(): string {
  const lines = ['Usage: gpt2-train [flags]', ''];
  for (const [name, s] of Object.entries(SCHEMA) as Array<[string, FlagSpec]>) {
    const kind =
      typeof s.kind === 'string'
        ? s.kind === 'bool'
          ? ''
          : ` <${s.kind}>`
        : ` <${s.kind.oneOf.join('|')}>`;
    lines.push(`  --${name}${kind}`.padEnd(44) + s.help);
  }
  return lines.join('\n');
}

export function parseArgs(argv: readonly string[]): Args {
  const raw = new Map<Flag, string | number | boolean>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    // `pnpm start -- --steps 5` hands the separator through; it carries no meaning here.
    if (a === '--') continue;
    if (!a.startsWith('--'))
      throw new UsageError(`unexpected argument '${a}' (flags start with --)`);
    let name = a.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    if (!(name in SCHEMA))
      throw new UsageError(
        `unknown flag --${name}; known flags: ${Object.keys(SCHEMA)
          .map((k) => '--' + k)
          .join(' ')}`,
      );
    const spec: FlagSpec = SCHEMA[name as Flag];
    if (raw.has(name as Flag)) throw new UsageError(`--${name} given twice`);
    if (spec.kind === 'bool') {
      if (value !== undefined && value !== 'true' && value !== 'false')
        throw new UsageError(`--${name} takes no value (or =true/=false), got '${value}'`);
      raw.set(name as Flag, value !== 'false');
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
    }
    if (typeof spec.kind === 'object') {
      if (!spec.kind.oneOf.includes(value))
        throw new UsageError(
          `--${name} must be one of ${spec.kind.oneOf.join('|')}, got '${value}'`,
        );
      raw.set(name as Flag, value);
    } else if (spec.kind === 'string') {
      raw.set(name as Flag, value);
    } else {
      const x = Number(value);
      if (
        value.trim() === '' ||
        !Number.isFinite(x) ||
        (spec.kind === 'int' && !Number.isInteger(x))
      ) {
        throw new UsageError(
          `--${name} must be ${spec.kind === 'int' ? 'an integer' : 'a number'}, got '${value}'`,
        );
      }
      if (spec.min !== undefined && x < spec.min)
        throw new UsageError(`--${name} must be >= ${spec.min}, got ${x}`);
      raw.set(name as Flag, x);
    }
  }
  const g = <T>(k: Flag, d: T): T => (raw.has(k) ? (raw.get(k) as T) : d);
  const args: Args = {
    config: g('config', 'tiny'),
    attention: g('attention', 'flash'),
    backend: g('backend', 'cpu'),
    dtype: g<Args['dtype']>('dtype', undefined),
    totalBatch: g<number | undefined>('total-batch', undefined),
    peakTflops: g<number | undefined>('peak-tflops', undefined),
    steps: g<number | undefined>('steps', undefined),
    batch: g<number | undefined>('batch', undefined),
    seq: g<number | undefined>('seq', undefined),
    lr: g<number | undefined>('lr', undefined),
    warmup: g<number | undefined>('warmup', undefined),
    out: g<string | undefined>('out', undefined),
    resume: g('resume', false),
    overwrite: g('overwrite', false),
    seed: g('seed', 1337),
    sample: g('sample', 'The'),
    temperature: g('temperature', 0.8),
    topK: g('top-k', 40),
    sampleTokens: g('sample-tokens', 80),
    evalEvery: g('eval-every', 50),
    valBatches: g('val-batches', 8),
    ckptEvery: g('ckpt-every', 100),
    plotEvery: g('plot-every', 0),
    threads: g<number | undefined>('threads', undefined),
    workers: g('workers', 1),
    gpus: g<string | undefined>('gpus', undefined),
    collectiveTimeout: g('collective-timeout', 60),
    bucketMb: g('bucket-mb', 25),
    stopAfter: g<number | undefined>('stop-after', undefined),
    deterministic: g('deterministic', false),
    graphs: g<'auto' | 'on' | 'off' | undefined>('graphs', undefined),
    json: g('json', false),
    help: g('help', false),
  };
  if (args.peakTflops !== undefined && args.peakTflops <= 0)
    throw new UsageError(`--peak-tflops must be > 0, got ${args.peakTflops}`);
  if (args.temperature <= 0 && raw.has('temperature'))
    throw new UsageError(`--temperature must be > 0, got ${args.temperature}`);
  if (args.gpus !== undefined) {
    if (args.gpus !== 'all' && !/^[1-9][0-9]*$/.test(args.gpus))
      throw new UsageError(`--gpus must be a positive integer or 'all', got '${args.gpus}'`);
    if (raw.has('workers'))
      throw new UsageError(
        '--gpus and --workers exclude each other (--gpus N for cuda, --workers N for the CPU transport)',
      );
    if (args.backend !== 'cuda')
      throw new UsageError(
        `--gpus needs --backend cuda (got --backend ${args.backend}); use --workers N for other backends`,
      );
  }
  if (args.collectiveTimeout <= 0)
    throw new UsageError(`--collective-timeout must be > 0 seconds, got ${args.collectiveTimeout}`);
  if (args.bucketMb <= 0) throw new UsageError(`--bucket-mb must be > 0, got ${args.bucketMb}`);
  if (args.resume && args.overwrite)
    throw new UsageError(
      '--resume and --overwrite exclude each other (continue a run, or replace it)',
    );
  return args;
}
