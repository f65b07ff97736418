// The PyTorch peer restates our FLOP count and peak lookup in Python (torch_gpt2_peer.py); both sides' MFU
// must use the same numbers. The peer's two functions are run here without torch (extracted with Python's
// ast) on every benchmark config and device string, and compared with @flashattn/transformer's.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { lookupPeakTflops, trainingFlopsPerToken } from '@flashattn/transformer';
import { describe, expect, it } from 'vitest';
import { BENCH_CONFIGS, BENCH_CONFIG_NAMES } from './configs.js';

const peer = fileURLToPath(new URL('./torch_gpt2_peer.py', import.meta.url));
const python = spawnSync('python3', ['--version']).status === 0;
if (!python) console.log('peer-formula skipped: no python3 on this machine');

const devices = [
  'NVIDIA H100 80GB HBM3',
  'NVIDIA H200',
  'NVIDIA H100 PCIe',
  'NVIDIA A100-SXM4-80GB',
  'cpu',
];

describe.skipIf(!python)('torch_gpt2_peer.py formulas = flops.ts', () => {
  it('flops_per_token and peak_tflops agree on every config, T and device', () => {
    const cases = BENCH_CONFIG_NAMES.flatMap((name) =>
      [64, 1024, 4096].filter((T) => T <= BENCH_CONFIGS[name].maxSeqLen).map((T) => ({ name, T })),
    );
    const script = `
import ast, json, sys
src = open(sys.argv[1]).read()
ns = {"re": __import__("re")}
fns = [n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name in ("flops_per_token", "peak_tflops")]
exec(compile(ast.Module(body=fns, type_ignores=[]), "peer", "exec"), ns)
cfgs = {k: dict(C=v["nEmbd"], L=v["nLayer"], vocab=v["vocabSize"]) for k, v in json.loads(sys.argv[2]).items()}
print(json.dumps({
  "flops": [ns["flops_per_token"](cfgs[c["name"]], c["T"]) for c in json.loads(sys.argv[3])],
  "peaks": [[ns["peak_tflops"](d, dt) for dt in ("bf16", "fp32")] for d in json.loads(sys.argv[4])],
}))`;
    const r = spawnSync(
      'python3',
      [
        '-c',
        script,
        peer,
        JSON.stringify(BENCH_CONFIGS),
        JSON.stringify(cases),
        JSON.stringify(devices),
      ],
      { encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as {
      flops: number[];
      peaks: Array<[number | null, number | null]>;
    };
    expect(out.flops).toEqual(cases.map((c) => trainingFlopsPerToken(BENCH_CONFIGS[c.name], c.T)));
    expect(out.peaks).toEqual(
      devices.map((d) => [
        lookupPeakTflops(d, 'bfloat16').tflops,
        lookupPeakTflops(d, 'float32').tflops,
      ]),
    );
  });
});
