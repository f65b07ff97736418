/**
 * Join the addon's and PyTorch's benchmark JSON into the markdown table of BENCHMARKS.md.
 *   node report.mjs ours.json peer.json [memory.json]
 */
import { readFileSync } from 'node:fs';

interface Row {
  impl: string;
  dtype: string;
  batch: number;
  seqlen: number;
  nheads: number;
  headDim: number;
  causal: boolean;
  fwdTflops?: number;
  bwdTflops?: number;
  fwdbwdTflops?: number;
  error?: string;
}

const [oursFile, peerFile, memFile] = process.argv.slice(2);
if (!oursFile || !peerFile) {
  console.error('usage: report.mjs ours.json peer.json [memory.json]');
  process.exit(2);
}
const ours = JSON.parse(readFileSync(oursFile, 'utf8')) as {
  device: { name: string };
  results: Row[];
};
const peer = JSON.parse(readFileSync(peerFile, 'utf8')) as {
  info: Record<string, unknown>;
  results: Row[];
};
const key = (r: Row): string => `${r.dtype}|${r.headDim}|${r.causal}|${r.batch}|${r.seqlen}`;
const byImpl = new Map<string, Row>();
for (const r of peer.results) byImpl.set(`${r.impl}|${key(r)}`, r);

const f1 = (x: number | undefined): string =>
  x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(0);
const ratio = (a: number | undefined, b: number | undefined): string =>
  a && b ? (a / b).toFixed(2) : '-';
const trip = (r: Row | undefined): string =>
  r && !r.error ? `${f1(r.fwdTflops)} / ${f1(r.bwdTflops)} / ${f1(r.fwdbwdTflops)}` : 'n/a';
const ratios = (a: Row, b: Row | undefined): string =>
  b && !b.error
    ? `${ratio(a.fwdTflops, b.fwdTflops)} / ${ratio(a.bwdTflops, b.bwdTflops)} / ${ratio(a.fwdbwdTflops, b.fwdbwdTflops)}`
    : 'n/a';

console.log(
  `Device: ${ours.device.name}; peer: torch ${String(peer.info.torch)}, CUDA ${String(peer.info.cuda)}, cuDNN ${String(peer.info.cudnn)}.`,
);
console.log(
  'TFLOP/s as fwd / bwd / fwd+bwd (FlashAttention convention); ratios are ours / peer.\n',
);
console.log(
  '| dtype | D | causal | B x N (H) | ours | torch flash | torch cuDNN | ours / flash | ours / cuDNN |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of ours.results) {
  const fl = byImpl.get(`flash|${key(r)}`);
  const cu = byImpl.get(`cudnn|${key(r)}`);
  console.log(
    `| ${r.dtype === 'bfloat16' ? 'bf16' : 'fp16'} | ${r.headDim} | ${r.causal ? 'yes' : 'no'} | ${r.batch} x ${r.seqlen} (${r.nheads}) | ${trip(r)} | ${trip(fl)} | ${trip(cu)} | ${ratios(r, fl)} | ${ratios(r, cu)} |`,
  );
}
if (memFile) {
  const mem = JSON.parse(readFileSync(memFile, 'utf8')) as {
    seqlen: number;
    extraBytes: number;
    inputBytes: number;
    extraPerToken: number;
  }[];
  console.log(
    '\nExtra device memory of forward + backward (bf16, B=1, H=16, D=128; outputs + workspace, inputs excluded):\n',
  );
  console.log('| N | inputs q,k,v,dO | extra | extra per token |');
  console.log('| --- | --- | --- | --- |');
  for (const m of mem) {
    console.log(
      `| ${m.seqlen} | ${(m.inputBytes / 2 ** 20).toFixed(0)} MiB | ${(m.extraBytes / 2 ** 20).toFixed(1)} MiB | ${m.extraPerToken.toFixed(0)} B |`,
    );
  }
}
