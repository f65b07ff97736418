/**
 * Headless Chromium for the browser tests: Debian's `chromium` (FLASHATTN_CHROMIUM overrides the path) with
 * WebGPU on its SwiftShader adapter, as CI runs it (root, no sandbox, no background networking).
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.FLASHATTN_CHROMIUM ?? '/usr/bin/chromium';

/** Undefined when the browser binary is there, else why the browser tests cannot run. */
export const chromiumMissing: string | undefined = existsSync(CHROMIUM)
  ? undefined
  : `${CHROMIUM} not found (apt-get install chromium)`;

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--enable-unsafe-webgpu',
      '--use-webgpu-adapter=swiftshader',
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-dev-shm-usage',
    ],
  });
}
