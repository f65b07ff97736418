// GPT-2 trained in the page on the user's GPU: @flashattn/transformer's GPT2 on @flashattn/webgpu's
// WebGpuOps (navigator.gpu), on the bundled corpus tokenised in the page. A live loss chart (train every
// step, validation every evalEvery steps), tokens/s and step time, a sample as it learns, and save / load
// of a safetensors checkpoint. Every step is awaited and the loop yields to the event loop between steps,
// so the page stays responsive. State for tests on window.__gpt2web.
//
// Query parameters: steps (default 400), layers (2), heads (2), embd (64), seq (32), batch (8),
// lr (3e-3), evalEvery (20), sampleEvery (50), seed (1337), auto (start training at once: 1).
import { createRng, type Rng } from '@flashattn/core';
import {
  AdamW,
  clipGradNorm,
  encodeCheckpoint,
  generate,
  GPT2,
  loadCheckpointBytes,
  type GPT2Config,
} from '@flashattn/transformer';
import { createWebGpuOps, type WebGpuOps } from '../src/index.js';
import { drawChart, type Series } from './chart.js';
import { CORPUS, charTokenizer } from './corpus.js';

interface PageState {
  adapter?: string;
  status: string;
  step: number;
  steps: number;
  train: { step: number; loss: number }[];
  val: { step: number; loss: number }[];
  tokensPerSec?: number;
  msPerStep?: number;
  sample?: string;
  chartPixels: number;
  done: boolean;
  error?: string;
  /** Save a checkpoint into memory, load it into a fresh model, and compare a validation loss. */
  roundTrip?: () => Promise<{ before: number; after: number; bytes: number }>;
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const q = new URLSearchParams(location.search);
const num = (k: string, d: number): number => (q.has(k) ? Number(q.get(k)) : d);
const state: PageState = {
  status: 'starting',
  step: 0,
  steps: num('steps', 400),
  train: [],
  val: [],
  chartPixels: 0,
  done: false,
};
(window as unknown as { __gpt2web: PageState }).__gpt2web = state;

const setStatus = (s: string): void => {
  state.status = s;
  $('status').textContent = s;
};

const tok = charTokenizer(CORPUS);
const data = tok.encode(CORPUS);
const split = Math.floor(data.length * 0.9);
const config: GPT2Config = {
  vocabSize: tok.vocab.length,
  maxSeqLen: num('seq', 32),
  nLayer: num('layers', 2),
  nHead: num('heads', 2),
  nEmbd: num('embd', 64),
};
const [B, T] = [num('batch', 8), config.maxSeqLen];
const seed = num('seed', 1337);

/** B random windows of T + 1 tokens from [lo, hi): inputs and next-token targets (B, T). */
function batch(rng: Rng, lo: number, hi: number): { x: Int32Array; y: Int32Array } {
  const x = new Int32Array(B * T);
  const y = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const o = lo + rng.int(hi - lo - T - 1);
    x.set(data.subarray(o, o + T), b * T);
    y.set(data.subarray(o + 1, o + T + 1), b * T);
  }
  return { x, y };
}

async function main(): Promise<void> {
  if (!('gpu' in navigator) || !navigator.gpu) {
    throw new Error(
      'WebGPU is unavailable in this browser: navigator.gpu is missing (use a recent Chrome or Edge, ' +
        'or enable WebGPU in the browser flags; on Linux Chrome also needs --enable-unsafe-webgpu)',
    );
  }
  let ops: WebGpuOps;
  try {
    ops = await createWebGpuOps();
  } catch (e) {
    throw new Error(`WebGPU is present but no device could be created: ${(e as Error).message}`);
  }
  state.adapter = ops.name;
  let model = new GPT2({ config, ops, paramDType: 'float32', seed });
  let opt = new AdamW(ops, model.specs, model.paramsLength);
  const rng = createRng(seed ^ 0x9e3779b9);
  const valRng = (): Rng => createRng(seed ^ 0x51ed270b); // the same validation batches every time
  const lr = num('lr', 3e-3);
  const evalEvery = num('evalEvery', 20);
  const sampleEvery = num('sampleEvery', 50);
  const series: Series[] = [
    { label: 'train', color: '#1f77b4', points: state.train },
    { label: 'val', color: '#ff7f0e', points: state.val },
  ];
  const redraw = (): void => {
    state.chartPixels = drawChart($<HTMLCanvasElement>('chart'), series, state.steps);
  };
  const valLoss = async (m: GPT2<unknown>): Promise<number> => {
    const r = valRng();
    let s = 0;
    for (let i = 0; i < 2; i++) {
      const { x, y } = batch(r, split, data.length);
      s += await m.forward(x, y, B, T, false);
    }
    return s / 2;
  };
  const sample = async (): Promise<void> => {
    const prompt = Array.from(tok.encode('We '));
    const out = await generate(model, prompt, {
      maxNewTokens: 60,
      rng: createRng(seed + state.step),
      temperature: 0.8,
      topK: 0,
      useCache: false,
    });
    state.sample = tok.decode([...prompt, ...out]); // generate returns the new tokens
    $('sample').textContent = `(step ${state.step}) ${state.sample}`;
  };

  let running = false;
  const loop = async (): Promise<void> => {
    setStatus(`training on ${ops.name}`);
    let t0 = performance.now();
    let tokens = 0;
    while (running && state.step < state.steps) {
      const s0 = performance.now();
      const { x, y } = batch(rng, 0, split);
      await model.zeroGrad();
      const loss = await model.forward(x, y, B, T, true);
      await model.backward();
      await clipGradNorm(ops, model.grads, 1.0);
      await opt.step(model.params, model.grads, lr);
      await model.syncParams();
      state.step++;
      state.train.push({ step: state.step, loss });
      tokens += B * T;
      state.msPerStep = performance.now() - s0;
      state.tokensPerSec = tokens / ((performance.now() - t0) / 1000);
      if (state.step % evalEvery === 0 || state.step === state.steps) {
        state.val.push({ step: state.step, loss: await valLoss(model) });
        $('val').textContent = `val ${state.val[state.val.length - 1]!.loss.toFixed(4)}`;
      }
      if (state.step % sampleEvery === 0 || state.step === state.steps) await sample();
      $('step').textContent = `step ${state.step}/${state.steps}`;
      $('loss').textContent = `loss ${loss.toFixed(4)}`;
      $('tps').textContent = `${state.tokensPerSec.toFixed(0)} tokens/s`;
      $('ms').textContent = `${state.msPerStep.toFixed(1)} ms/step`;
      redraw();
      if (state.step === 1) [t0, tokens] = [performance.now(), 0]; // tokens/s without compile time
      await new Promise((r) => setTimeout(r, 0)); // let the page paint and handle input
    }
    running = false;
    if (state.step >= state.steps) {
      state.done = true;
      setStatus(`done: ${state.steps} steps on ${ops.name}`);
    } else setStatus(`paused at step ${state.step}`);
  };

  const checkpoint = (): Promise<Uint8Array> =>
    encodeCheckpoint(model, opt, {
      step: state.step,
      dataPosition: 0,
      rngState: rng.state(),
      extra: { vocab: JSON.stringify(tok.vocab) },
    });
  state.roundTrip = async () => {
    const bytes = await checkpoint();
    const before = await valLoss(model);
    const fresh = new GPT2({ config, ops, paramDType: 'float32', seed: seed + 1 });
    const freshOpt = new AdamW(ops, fresh.specs, fresh.paramsLength);
    await loadCheckpointBytes(bytes, 'page checkpoint', fresh, freshOpt);
    const after = await valLoss(fresh);
    return { before, after, bytes: bytes.length };
  };

  const start = $<HTMLButtonElement>('start');
  const stop = $<HTMLButtonElement>('stop');
  start.onclick = () => {
    if (running) return;
    running = true;
    void loop().catch(fail);
  };
  stop.onclick = () => {
    running = false;
  };
  $<HTMLButtonElement>('save').onclick = async () => {
    const bytes = await checkpoint();
    const a = document.createElement('a');
    a.href = URL.createObjectURL(
      new Blob([Uint8Array.from(bytes)], { type: 'application/octet-stream' }),
    );
    a.download = `gpt2-web-step${state.step}.safetensors`;
    a.click();
    URL.revokeObjectURL(a.href);
  };
  $<HTMLInputElement>('load').onchange = async (ev) => {
    const file = (ev.target as HTMLInputElement).files?.[0];
    if (!file) return;
    running = false;
    const m = new GPT2({ config, ops, paramDType: 'float32', seed });
    const o = new AdamW(ops, m.specs, m.paramsLength);
    const st = await loadCheckpointBytes(new Uint8Array(await file.arrayBuffer()), file.name, m, o);
    [model, opt] = [m, o];
    state.step = st.step;
    rng.setState(st.rngState);
    setStatus(`loaded ${file.name} (step ${st.step}); press Train to continue`);
  };
  for (const id of ['start', 'stop', 'save', 'load']) $<HTMLButtonElement>(id).disabled = false;
  setStatus(
    `ready on ${ops.name}: ${model.numParams} parameters, vocabulary ${tok.vocab.length} characters`,
  );
  redraw();
  if (q.get('auto') === '1') start.click();
}

function fail(e: unknown): void {
  state.error = e instanceof Error ? e.message : String(e);
  setStatus(`error: ${state.error}`);
}

main().catch(fail);
