// Runs the conformance suite through navigator.gpu in the page and publishes the report on
// window.__conformance for the Playwright test (src/browser.test.ts) to read: once through the host-tensor
// API and once through the device API with q, k, v (and dq, dk, dv) packed in one buffer (?layouts=).
import {
  deviceAttentionBackend,
  runConformance,
  formatCaseResult,
  type DeviceLayout,
  type MatrixName,
} from '@flashattn/conformance';
import { createWebGPUBackend } from '../src/index.js';

interface PageResult {
  adapter?: string;
  passed?: number;
  failed?: number;
  skipped?: number;
  lines: string[];
  error?: string;
}

const log = document.getElementById('log')!;
const result: PageResult = { lines: [] };
const params = new URLSearchParams(location.search);
const matrix = (params.get('matrix') ?? 'smoke') as MatrixName;
const seed = Number(params.get('seed') ?? '1');
const layouts = (params.get('layouts') ?? 'host,packed').split(',') as ('host' | DeviceLayout)[];

async function main(): Promise<void> {
  const backend = await createWebGPUBackend();
  result.adapter = backend.name;
  result.passed = result.failed = result.skipped = 0;
  try {
    for (const layout of layouts) {
      const be = layout === 'host' ? backend : deviceAttentionBackend(backend, { layout });
      const report = await runConformance(be, {
        matrix,
        seed,
        onCase: (r) => {
          result.lines.push(`[${layout}] ${formatCaseResult(r)}`);
          log.textContent = result.lines.join('\n');
        },
      });
      result.passed += report.passed;
      result.failed += report.failed;
      result.skipped += report.skipped;
    }
  } finally {
    await backend.dispose();
  }
}

main()
  .catch((e: unknown) => {
    result.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  })
  .finally(() => {
    (window as unknown as { __conformance: PageResult }).__conformance = result;
  });
