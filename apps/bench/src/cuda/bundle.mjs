// Bundle the device runner and the report joiner into one folder to carry to the GPU machine (no Node
// modules there): node bench/bundle.mjs <outdir>. Uses rolldown (already in the workspace through vite).
import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outDir = process.argv[2] ?? join(here, '..', '..', '..', '..', '.bundle-cuda');
// vitest -> vite -> rolldown (pnpm keeps it out of the root node_modules)
const fromVitest = createRequire(realpathSync(join(here, '..', '..', '..', '..', 'node_modules', 'vitest', 'package.json')));
const fromVite = createRequire(realpathSync(fromVitest.resolve('vite/package.json')));
const { build } = await import(pathToFileURL(fromVite.resolve('rolldown')).href);
for (const name of ['device-run', 'report']) {
  await build({
    input: join(here, `${name}.ts`),
    platform: 'node',
    output: { file: join(outDir, `${name}.mjs`), format: 'esm' },
    logLevel: 'warn',
  });
}
console.log(`bundled into ${outDir}`);
