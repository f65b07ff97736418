#!/usr/bin/env bash
# GPT-2 training tokens/s with two builds of the repo, alternating, same machine, same run:
#   apps/bench/src/cpu/gpt2-before-after.sh BEFORE_REPO AFTER_REPO [STEPS] [ROUNDS] [CONFIGS]
# AFTER_NODE_ARGS (env) adds node flags to the AFTER runs, e.g. --experimental-wasm-relaxed-simd, and
# BEFORE_NODE_ARGS to the BEFORE runs (both builds with FMA: the same flag in both).
# Each repo must have apps/gpt2-train built (npx -y pnpm@10.34.8 --filter gpt2-train... build). Prints one
# line per (round, config, build): tokens/s over steps 2.. (--json's tokensPerSecSteady) and peak RSS.
# Make the BEFORE repo with: git worktree add /tmp/before <commit> && cd /tmp/before &&
#   npx -y pnpm@10.34.8 install --offline && npx -y pnpm@10.34.8 --filter gpt2-train... build
set -euo pipefail
before=$1 after=$2 steps=${3:-4} rounds=${4:-2} configs=${5:-tiny small}
out=$(mktemp -d)
echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), node $(node --version)"
for r in $(seq 1 "$rounds"); do
  for config in $configs; do
    for which in before after; do
      repo=$before flags=${BEFORE_NODE_ARGS:-}
      if [ "$which" = after ]; then repo=$after flags=${AFTER_NODE_ARGS:-}; fi
      # shellcheck disable=SC2086
      line=$(node $flags "$repo/apps/gpt2-train/dist/main.js" --config "$config" --steps "$steps" --eval-every 0 \
        --ckpt-every 0 --sample-tokens 0 --val-batches 1 --json --overwrite --out "$out/$which-$config" 2>/dev/null | tail -1)
      tps=$(node -e 'const s=JSON.parse(process.argv[1]); console.log(Math.round(s.tokensPerSecSteady), Math.round(s.peakRssMiB))' "$line")
      echo "round $r $config $which${flags:+ ($flags)} tokens/s peakRSSMiB: $tps (load $(cut -d' ' -f1 /proc/loadavg))"
    done
  done
done
rm -rf "$out"
