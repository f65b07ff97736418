/**
 * The conformance suite in a real browser: Vite serves browser/ (a page that runs the `smoke` matrix
 * through navigator.gpu, on the host-tensor API and on the device API with packed q, k, v), headless Chromium from Debian's `chromium` package loads it through
 * playwright-core, and the test asserts on the report the page publishes.
 * Chromium gives WebGPU on a CPU-only machine through SwiftShader with the flags of test-utils/chromium.ts.
 * Skipped (with the reason printed) when /usr/bin/chromium is missing, unless CI or
 * FLASHATTN_REQUIRE_WEBGPU=1 is set, where that is a failure.
 */

import { fileURLToPath } from 'node:url';
import { CASE_MATRICES } from '@flashattn/conformance';
import { type Browser } from 'playwright-core';
import { createServer, type ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumMissing, launchChromium } from './test-utils/chromium.js';
import { webgpuRequired } from './test-utils/env.js';

const missing = chromiumMissing;
const skip = missing !== undefined && !webgpuRequired();
if (skip) console.warn(`browser conformance skipped: ${missing}`);

interface PageResult {
  adapter?: string;
  passed?: number;
  failed?: number;
  skipped?: number;
  lines: string[];
  error?: string;
}

describe.skipIf(skip)('conformance in headless Chromium (navigator.gpu, SwiftShader)', () => {
  let server: ViteDevServer | undefined;
  let browser: Browser | undefined;

  beforeAll(async () => {
    server = await createServer({
      root: fileURLToPath(new URL('../browser', import.meta.url)),
      configFile: false,
      logLevel: 'error',
      server: {
        port: 0,
        host: '127.0.0.1',
        fs: { allow: [fileURLToPath(new URL('../../..', import.meta.url))] },
      },
      // The page never loads Dawn: keep the Node-only optional peer out of the dependency scan.
      optimizeDeps: { exclude: ['webgpu'] },
    });
    await server.listen();
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('runs the smoke matrix (host API, packed device views) with every case passing', async () => {
    const url = server!.resolvedUrls!.local[0]!;
    const page = await browser!.newPage();
    const consoleLines: string[] = [];
    page.on('console', (m) => consoleLines.push(m.text()));
    page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
    await page.goto(`${url}?matrix=smoke&seed=20261121&layouts=host,packed`);
    await page.waitForFunction(
      () => (window as unknown as { __conformance?: unknown }).__conformance,
      undefined,
      {
        timeout: 280_000,
        polling: 500,
      },
    );
    const r = (await page.evaluate(
      () => (window as unknown as { __conformance: unknown }).__conformance,
    )) as PageResult;
    console.log(`browser adapter: ${r.adapter}\n${r.lines.join('\n')}`);
    expect(r.error, `page error; console:\n${consoleLines.join('\n')}`).toBeUndefined();
    expect(r.failed).toBe(0);
    expect(r.passed).toBe(2 * CASE_MATRICES.smoke.length);
  }, 300_000);
});
