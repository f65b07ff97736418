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
  let summary;
  try {
    summary = await runTraining(args, { signals: true });
  } catch (e) {
    // A flag value that only the run can judge (--seq past the model, --steps below the checkpoint, an
    // existing checkpoint without --resume/--overwrite): the same status 2 and usage as a parse error.
    if (e instanceof UsageError) {
      process.stderr.write(`gpt2-train: ${e.message}\n\n${usage()}\n`);
      return 2;
    }
    throw e;
  }
  if (args.json)
    process.stdout.write(
      JSON.stringify({ ...summary, history: undefined, sample: undefined }) + '\n',
    );
  return summary.stoppedEarly ? 130 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`gpt2-train: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
