#!/usr/bin/env node
// Two gpt2-train runs' loss histories side by side, bit for bit (device.sh resume: a run against its stop + resume;
// multigpu/device.sh w1: one process against --gpus 1). The history is the checkpoint's `extra.history` metadata
// (train and val losses per step, and the clip norm where recorded); each run's --out folder holds the checkpoint.
//   node compare-histories.mjs <runA> <runB> <label> <steps>
// Prints every step (loss, norm) and val point of A beside B, then `<label>: EXACT (...)` when both have <steps>
// train steps and every train and val loss is bit-identical, else `<label>: NOT exact`. Exit 0 either way (a report).
import { readFileSync } from 'node:fs';

const history = (dir) => {
  const b = readFileSync(`${dir}/checkpoint.safetensors`);
  const n = Number(b.readBigUInt64LE(0));
  return JSON.parse(JSON.parse(b.subarray(8, 8 + n).toString()).__metadata__['extra.history']);
};
const [dirA, dirB, label, stepsArg] = process.argv.slice(2);
const steps = Number(stepsArg);
const a = history(dirA);
const b = history(dirB);
let same = a.train.length === steps && b.train.length === steps;
a.train.forEach(([s, l], i) => {
  const m = b.train[i]?.[1];
  same &&= l === m;
  const norms = a.norm ? `; norm ${a.norm[i]?.[1]} vs ${b.norm?.[i]?.[1]}` : '';
  console.log(
    `step ${s}: loss ${l} vs ${m} ${l === m ? '(identical)' : `(DIFFERENT by ${Math.abs(l - m).toExponential(2)})`}${norms}`,
  );
});
a.val.forEach(([s, l], i) => {
  const m = b.val[i]?.[1];
  same &&= l === m;
  console.log(`val at ${s}: ${l} vs ${m}`);
});
console.log(`${label}: ${same ? 'EXACT (every train and val loss bit-identical)' : 'NOT exact'}`);
