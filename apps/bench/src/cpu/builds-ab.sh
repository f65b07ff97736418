#!/usr/bin/env bash
# Build packages/cpu as of COMMIT into packages/cpu/node_modules/.ab/NAME (a folder inside the package,
# so that its imports of @flashattn/core resolve), for builds-ab.mjs:
#   apps/bench/src/cpu/builds-ab.sh 62d9016 before && apps/bench/src/cpu/builds-ab.sh HEAD after
set -euo pipefail
commit=$1 name=$2
cd "$(git rev-parse --show-toplevel)/packages/cpu"
src=node_modules/.ab/src-$name
rm -rf "$src" "node_modules/.ab/$name" && mkdir -p "$src"
git archive "$commit" src | tar -x -C "$src"
cat > "$src/tsconfig.json" <<JSON
{ "extends": "../../../../../tooling/tsconfig/base.json",
  "compilerOptions": { "rootDir": "src", "outDir": "../$name", "declaration": false, "declarationMap": false, "sourceMap": false },
  "include": ["src"], "exclude": ["src/**/*.test.ts"] }
JSON
npx tsc -p "$src/tsconfig.json"
echo "built packages/cpu at $commit into packages/cpu/node_modules/.ab/$name"
