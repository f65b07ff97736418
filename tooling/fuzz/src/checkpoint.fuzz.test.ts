// Fuzzes checkpoints (@flashattn/transformer): truncated files, flipped bytes and corrupted safetensors
// headers must be rejected with CheckpointError naming the file, leaving the model and optimizer untouched
// (loads are all-or-nothing), or load exactly the saved values; a write that fails part-way must leave the
// previous file intact and no temporary file behind.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { CpuOps } from '@flashattn/cpu';
import {
  AdamW,
  CheckpointError,
  encodeCheckpoint,
  GPT2,
  loadCheckpointBytes,
  writeFileAtomic,
} from '@flashattn/transformer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEED, fuzz } from './fuzz.js';

const dir = mkdtempSync(join(tmpdir(), 'flashattn-fuzz-ckpt-'));
const ops = new CpuOps({ threads: 1 });
const config = { vocabSize: 16, maxSeqLen: 8, nLayer: 1, nHead: 2, nEmbd: 8 };
const saved = new GPT2({ config, ops, seed: 1 });
const savedOpt = new AdamW(ops, saved.specs, saved.numParams);
savedOpt.t = 3;
const target = new GPT2({ config, ops, seed: 2 }); // loads go here
const targetOpt = new AdamW(ops, target.specs, target.numParams);
afterAll(async () => {
  await ops.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const PATH = 'fuzz.safetensors';
let bytes: Uint8Array;
let savedParams: Float32Array | Float64Array;
let before: Float32Array | Float64Array;

function sameBits(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

/** Load corrupted bytes: CheckpointError naming the file with the model untouched, or exactly the saved values. */
async function loadOrReject(buf: Uint8Array, what: string, mustFail: boolean): Promise<void> {
  const t0 = await target.getParams();
  try {
    await loadCheckpointBytes(buf, PATH, target, targetOpt, { requireOptimizer: true });
  } catch (e) {
    if (!(e instanceof CheckpointError))
      throw new Error(`${what}: expected CheckpointError, got ${String(e)}`, { cause: e });
    if (!e.message.includes(PATH))
      throw new Error(`${what}: the error does not name the file: ${e.message}`);
    if (!sameBits(await target.getParams(), t0))
      throw new Error(`${what}: a rejected load changed the model`);
    return;
  }
  if (mustFail) throw new Error(`${what}: the corrupted checkpoint loaded`);
  if (!sameBits(await target.getParams(), savedParams))
    throw new Error(`${what}: loaded values differ from the saved ones`);
  // restore the target's own values for the next case
  await loadCheckpointBytes(
    await encodeCheckpoint(saved, savedOpt, { step: 0, dataPosition: 0, rngState: 0 }),
    PATH,
    target,
  );
  await ops.upload(target.params, before);
  await target.syncParams();
}

function headerOf(b: Uint8Array): { len: number; json: Record<string, unknown> } {
  const len = Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true));
  return {
    len,
    json: JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + len))) as Record<string, unknown>,
  };
}

function withHeader(b: Uint8Array, json: unknown): Uint8Array {
  const { len } = headerOf(b);
  const h = new TextEncoder().encode(JSON.stringify(json));
  const out = new Uint8Array(8 + h.length + (b.length - 8 - len));
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(b.subarray(8 + len), 8 + h.length);
  return out;
}

beforeAll(async () => {
  bytes = await encodeCheckpoint(saved, savedOpt, { step: 3, dataPosition: 7, rngState: 11 });
  savedParams = await saved.getParams();
  before = await target.getParams();
});

describe(`checkpoint fuzz (seed ${SEED})`, () => {
  it('a checkpoint round-trips', async () => {
    const st = await loadCheckpointBytes(bytes, PATH, target, targetOpt, {
      requireOptimizer: true,
    });
    expect(st.step).toBe(3);
    expect(sameBits(await target.getParams(), savedParams)).toBe(true);
    await ops.upload(target.params, before);
    await target.syncParams();
    expect(sameBits(await target.getParams(), before)).toBe(true);
  });

  it('a corrupted format key does not switch off the checksum (found by this fuzz)', async () => {
    const b = Uint8Array.from(bytes);
    const at = new TextDecoder().decode(b.subarray(0, 200)).indexOf('"format"') + 2; // the 'o' of format
    b[at] ^= 0x20;
    b[b.length - 1] ^= 0x01; // and a flipped data byte
    await expect(loadCheckpointBytes(b, PATH, target, targetOpt)).rejects.toThrow(CheckpointError);
    expect(sameBits(await target.getParams(), before)).toBe(true);
  });

  it('truncated files are rejected whole', async () => {
    const n = await fuzz(
      'checkpoint truncated',
      fc.integer({ min: 0, max: 1 << 30 }),
      300,
      async (x) => {
        const L = x % bytes.length; // every proper prefix, the empty file included
        await loadOrReject(
          bytes.subarray(0, L),
          `truncated to ${L} of ${bytes.length} bytes`,
          true,
        );
      },
    );
    expect(n).toBeGreaterThan(0);
  });

  it('flipped bytes are rejected or load exactly the saved values', async () => {
    const flips = fc.array(
      fc.tuple(fc.integer({ min: 0, max: 1 << 30 }), fc.integer({ min: 1, max: 255 })),
      { minLength: 1, maxLength: 4 },
    );
    const n = await fuzz('checkpoint flipped', flips, 500, async (fl) => {
      const b = Uint8Array.from(bytes);
      for (const [at, x] of fl) b[at % b.length] ^= x;
      const { len } = headerOf(bytes);
      // A flip in the tensor bytes is caught by the checksum; one in the header may be harmless whitespace.
      const inData = fl.some(([at]) => at % b.length >= 8 + len);
      await loadOrReject(
        b,
        `bytes ${fl.map(([at, x]) => `${at % b.length}^${x}`).join(',')}`,
        inData && !fl.some(([at]) => at % b.length < 8 + len),
      );
    });
    expect(n).toBeGreaterThan(0);
  });

  it('corrupted headers (dtype, shape, offsets, missing tensors, metadata) are rejected', async () => {
    const { json } = headerOf(bytes);
    const names = Object.keys(json).filter((k) => k !== '__metadata__');
    const edit = fc.oneof(
      fc
        .tuple(
          fc.constantFrom(...names),
          fc.constantFrom<unknown>('F16', 'I32', 'BF16', 'x', null, 3),
        )
        .map(([n, d]) => ({
          what: `${n}.dtype = ${String(d)}`,
          f: (j: Record<string, Record<string, unknown>>) => void (j[n]!['dtype'] = d),
        })),
      fc
        .tuple(
          fc.constantFrom(...names),
          fc.constantFrom<unknown>([], [1], [2, 3, 4, 5], [-1, 8], [0.5, 8], 'shape', null),
        )
        .map(([n, s]) => ({
          what: `${n}.shape = ${JSON.stringify(s)}`,
          f: (j: Record<string, Record<string, unknown>>) => void (j[n]!['shape'] = s),
        })),
      fc
        .tuple(
          fc.constantFrom(...names),
          fc.integer({ min: -64, max: 64 }).filter((d) => d !== 0),
          fc.boolean(),
        )
        .map(([n, d, end]) => ({
          what: `${n}.data_offsets[${end ? 1 : 0}] += ${d}`,
          f: (j: Record<string, Record<string, unknown>>) => {
            const o = [...(j[n]!['data_offsets'] as number[])];
            o[end ? 1 : 0]! += d;
            j[n]!['data_offsets'] = o;
          },
        })),
      fc.constantFrom(...names).map((n) => ({
        what: `delete ${n}`,
        f: (j: Record<string, Record<string, unknown>>) => void delete j[n],
      })),
      fc
        .constantFrom<[string, string]>(
          ['checksum', '00000000'],
          ['config', '{'],
          ['config', '{"vocabSize":17}'],
          ['format', 'flashattn-gpt2/9'],
          ['optimizer', 'none'],
          ['optimizer', '{'],
          ['step', '-1'],
          ['step', '1.5'],
          ['data_position', 'abc'],
          ['rng_state', '-3'],
        )
        .map(([k, v]) => ({
          what: `__metadata__.${k} = ${v}`,
          f: (j: Record<string, Record<string, unknown>>) => void (j['__metadata__']![k] = v),
        })),
    );
    const n = await fuzz('checkpoint header', edit, 500, async ({ what, f }) => {
      const j = JSON.parse(JSON.stringify(json)) as Record<string, Record<string, unknown>>;
      f(j);
      await loadOrReject(withHeader(bytes, j), what, true);
    });
    expect(n).toBeGreaterThan(0);
  });

  it('a write that fails part-way leaves the previous file and no temporary file', async () => {
    const path = join(dir, 'ckpt.safetensors');
    const old = new Uint8Array([1, 2, 3]);
    writeFileSync(path, old);
    const arb = fc.tuple(fc.integer({ min: 1, max: 4096 }), fc.integer({ min: 0, max: 1 << 30 }));
    const n = await fuzz('checkpoint interrupted write', arb, 200, ([chunkBytes, at]) => {
      const chunks = Math.ceil(bytes.length / chunkBytes);
      const failAt = at % chunks; // fail after this many chunks (0 = before the first completes)
      let seen = 0;
      expect(() =>
        writeFileAtomic(path, bytes, {
          chunkBytes,
          onChunk: () => {
            if (seen++ === failAt) throw new Error('simulated failure');
          },
        }),
      ).toThrow('simulated failure');
      expect(Array.from(readFileSync(path))).toEqual(Array.from(old));
      expect(readdirSync(dir)).toEqual(['ckpt.safetensors']);
    });
    expect(n).toBeGreaterThan(0);
  });
});
