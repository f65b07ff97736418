#!/usr/bin/env node
/** gpt2-train: train GPT-2 on the Brown corpus on the CPU. `--help` lists the flags. */
import { parseArgs, usage, UsageError } from './cli.js';
import { runTraining } from './trainer.js';

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`gpt2-train: ${e.message}\n\n${usage()}\n`);
      return 2;
    }
    throw e;
  }
  if (args.help) {
    process.stdout.write(usage() + '\n');
    return 0;
  }
  const summary = await runTraining(args, { signals: true });
  if (args.json) process.stdout.write(JSON.stringify({ ...summary, history: undefined, sample: undefined }) + '\n');
  return summary.stoppedEarly ? 130 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`gpt2-train: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
