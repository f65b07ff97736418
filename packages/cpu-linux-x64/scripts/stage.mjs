#!/usr/bin/env node
// prepack: copy the addon that @flashattn/cpu's build compiled (packages/cpu/build/Release) into this package,
// with prebuilt.json saying what it is. postpack (--clean) removes both again, so the workspace never loads a
// stale copy. The binary is compiled once, by the source build (`pnpm build`), and reused here.
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(here, 'flashattn_cpu.node');
const info = join(here, 'prebuilt.json');
if (process.argv.includes('--clean')) {
  rmSync(out, { force: true });
  rmSync(info, { force: true });
  process.exit(0);
}
const addon = join(here, '..', 'cpu', 'build', 'Release', 'flashattn_cpu.node');
if (!existsSync(addon)) {
  console.error(
    `[@flashattn/cpu-linux-x64] ${addon} is missing: build it first with g++ on PATH (npx -y pnpm@10.34.8 --filter @flashattn/cpu build).`,
  );
  process.exit(1);
}
copyFileSync(addon, out);
const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));
writeFileSync(
  info,
  JSON.stringify(
    {
      package: pkg.name,
      version: pkg.version,
      platform: 'linux-x64',
      isa: 'x86-64 + AVX2 + FMA (checked at run time)',
    },
    null,
    2,
  ) + '\n',
);
console.log(`[@flashattn/cpu-linux-x64] staged ${addon}`);
