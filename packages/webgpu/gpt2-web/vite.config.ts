// The GPT-2 training page: `npx vite packages/webgpu/gpt2-web` (dev server) or `vite build` (static files
// for any web server). The page imports the workspace packages' builds (pnpm build first).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  server: { fs: { allow: [fileURLToPath(new URL('../../..', import.meta.url))] } },
  // The page never loads Dawn: keep the Node-only optional peer out of the dependency scan.
  optimizeDeps: { exclude: ['webgpu'] },
});
