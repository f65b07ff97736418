/**
 * The GPT-2 training page (gpt2-web/) in a real browser: Vite serves it, headless Chromium (SwiftShader
 * WebGPU, the flags of browser.test.ts) trains a small GPT-2 for a few steps on the bundled corpus, and
 * the test reads the page's state: the loss falls, the validation loss is measured, the chart drew, a
 * sample was generated, and a checkpoint saved in the page loads into a fresh model with the same
 * validation loss (bit for bit: same device, deterministic ops). A screenshot is kept in
 * test-artifacts/gpt2-web.png. Skipped (reason printed) without /usr/bin/chromium, unless CI or
 * FLASHATTN_REQUIRE_WEBGPU=1 is set.
 */
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Browser } from 'playwright-core';
import { createServer, type ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumMissing, launchChromium } from './test-utils/chromium.js';
import { webgpuRequired } from './test-utils/env.js';

const missing = chromiumMissing;
const skip = missing !== undefined && !webgpuRequired();
if (skip) console.warn(`gpt2-web page test skipped: ${missing}`);

interface PageState {
  adapter?: string;
  status: string;
  step: number;
  train: { step: number; loss: number }[];
  val: { step: number; loss: number }[];
  tokensPerSec?: number;
  sample?: string;
  chartPixels: number;
  done: boolean;
  error?: string;
}

const STEPS = 8;

describe.skipIf(skip)(
  'gpt2-web: GPT-2 trains in headless Chromium (navigator.gpu, SwiftShader)',
  () => {
    let server: ViteDevServer | undefined;
    let browser: Browser | undefined;

    beforeAll(async () => {
      server = await createServer({
        configFile: fileURLToPath(new URL('../gpt2-web/vite.config.ts', import.meta.url)),
        logLevel: 'error',
        server: { port: 0, host: '127.0.0.1' },
      });
      await server.listen();
      browser = await launchChromium();
    });

    afterAll(async () => {
      await browser?.close();
      await server?.close();
    });

    it(`trains ${STEPS} steps: loss falls, chart draws, checkpoint round-trips`, async () => {
      const url = server!.resolvedUrls!.local[0]!;
      const page = await browser!.newPage();
      const consoleLines: string[] = [];
      page.on('console', (m) => consoleLines.push(m.text()));
      page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
      // A small model and batch: SwiftShader runs WGSL on the CPU.
      await page.goto(
        `${url}?auto=1&steps=${STEPS}&layers=1&embd=32&heads=2&seq=16&batch=4&lr=1e-2&evalEvery=4&sampleEvery=${STEPS}`,
      );
      await page.waitForFunction(
        () => {
          const s = (window as unknown as { __gpt2web?: PageState }).__gpt2web;
          return s && (s.done || s.error !== undefined);
        },
        undefined,
        { timeout: 280_000, polling: 500 },
      );
      const s = (await page.evaluate(
        () => (window as unknown as { __gpt2web: PageState }).__gpt2web,
      )) as PageState;
      const dir = fileURLToPath(new URL('../test-artifacts', import.meta.url));
      mkdirSync(dir, { recursive: true });
      await page.screenshot({ path: `${dir}/gpt2-web.png`, fullPage: true });
      expect(s.error, `page error; console:\n${consoleLines.join('\n')}`).toBeUndefined();
      console.log(
        `gpt2-web on ${s.adapter}: losses ${s.train.map((p) => p.loss.toFixed(3)).join(' ')}; val ${s.val
          .map((p) => p.loss.toFixed(3))
          .join(' ')}; ${s.tokensPerSec?.toFixed(0)} tokens/s; sample ${JSON.stringify(s.sample)}`,
      );
      expect(s.train.length).toBe(STEPS);
      for (const p of s.train) expect(Number.isFinite(p.loss)).toBe(true);
      // The loss falls: mean of the last 3 steps below the first step's (random batches: not monotone).
      const last = s.train.slice(-3).reduce((a, p) => a + p.loss, 0) / 3;
      expect(last).toBeLessThan(s.train[0]!.loss - 0.1);
      expect(s.val.length).toBe(2);
      expect(s.chartPixels).toBeGreaterThan(2000); // axes, labels and two curves on a 720 x 280 canvas
      expect(s.sample?.startsWith('We ')).toBe(true);
      expect(s.sample!.length).toBeGreaterThan(3);
      const rt = await page.evaluate(() =>
        (
          window as unknown as {
            __gpt2web: {
              roundTrip: () => Promise<{ before: number; after: number; bytes: number }>;
            };
          }
        ).__gpt2web.roundTrip(),
      );
      expect(rt.bytes).toBeGreaterThan(0);
      expect(rt.after).toBe(rt.before);
    }, 300_000);
  },
);
