/**
 * Which kernel and tiles each head dim gets (the data-driven lists in variants.ts): the vec4 forward
 * where it pads the head dim by at most 1/8 and fits the device, the scalar forward otherwise, small
 * tiles on software adapters.
 */
import { describe, expect, it } from 'vitest';
import { deriveForward, flashForwardSharedBytes } from './kernels/flash-forward.wgsl.js';
import { flashBackwardDkdvSharedBytes } from './kernels/flash-backward-dkdv.wgsl.js';
import { flashBackwardDqSharedBytes } from './kernels/flash-backward-dq.wgsl.js';
import { chooseVariant } from './variants.js';

// The H100 through Dawn/Vulkan, and SwiftShader.
const H100 = {
  maxComputeWorkgroupStorageSize: 49152,
  maxComputeInvocationsPerWorkgroup: 1024,
  maxComputeWorkgroupSizeX: 1024,
};
const SWIFT = {
  maxComputeWorkgroupStorageSize: 32768,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
};

describe('chooseVariant', () => {
  it('gives D = 64 and 128 the measured vec4 default (128 x 64, 8 x 4, DK = JK = 16)', () => {
    for (const D of [64, 128]) {
      expect(chooseVariant(D, H100).forward).toEqual({
        BR: 128,
        BC: 64,
        TM: 8,
        TN: 4,
        DK: 16,
        JK: 16,
        V4: true,
      });
    }
  });
  it('falls back to smaller vec4 chunks at D = 256 (the 16-wide chunks need 49 KiB)', () => {
    const f = chooseVariant(256, H100).forward;
    expect(f.V4).toBe(true);
    expect(f.DK).toBe(8);
    expect(flashForwardSharedBytes(256, f)).toBeLessThanOrEqual(
      H100.maxComputeWorkgroupStorageSize,
    );
  });
  it('keeps the scalar forward where the vec4 layout would pad the head dim by more than 1/8', () => {
    for (const D of [32, 80, 96]) {
      const f = chooseVariant(D, H100).forward;
      expect(f.V4, `D = ${D}`).toBeFalsy();
      expect(
        deriveForward({ ...f, BR: 128, BC: 64, TM: 8, TN: 4, DK: 16, JK: 16, V4: true }, D).DP,
      ).toBeGreaterThan((D * 9) / 8);
    }
  });
  it('gives software adapters the compact scalar tiles', () => {
    const v = chooseVariant(64, SWIFT, true);
    expect(v.forward.V4).toBeFalsy();
    expect(v.forward.BR).toBe(16);
  });
});

describe('chooseVariant, backward', () => {
  it('gives D = 64 and 128 the vec4 dQ and dK/dV kernels, within the workgroup memory', () => {
    for (const D of [64, 128]) {
      const v = chooseVariant(D, H100);
      expect(v.dq.V4, `dq D = ${D}`).toBe(true);
      expect(v.dkdv.V4, `dkdv D = ${D}`).toBe(true);
      expect(flashBackwardDqSharedBytes(D, v.dq)).toBeLessThanOrEqual(
        H100.maxComputeWorkgroupStorageSize,
      );
      expect(flashBackwardDkdvSharedBytes(D, v.dkdv)).toBeLessThanOrEqual(
        H100.maxComputeWorkgroupStorageSize,
      );
    }
  });
  it('keeps the scalar backward where the vec4 layout would pad the head dim by more than 1/8', () => {
    for (const D of [32, 80, 96]) {
      const v = chooseVariant(D, H100);
      expect(v.dq.V4, `dq D = ${D}`).toBeFalsy();
      expect(v.dkdv.V4, `dkdv D = ${D}`).toBeFalsy();
    }
  });
  it('gives D = 64 and 128 the measured backward defaults', () => {
    const v64 = chooseVariant(64, H100);
    expect(v64.dq).toEqual({ BR: 64, BC: 64, TM: 4, TN: 4, DK: 16, JK: 16, V4: true });
    expect(v64.dkdv).toEqual({ BR: 64, BC: 64, TM: 4, TN: 4, DK: 8, JK: 8, V4: true });
    const v128 = chooseVariant(128, H100);
    expect(v128.dq).toEqual({ BR: 128, BC: 64, TM: 8, TN: 4, DK: 8, JK: 16, V4: true });
    expect(v128.dkdv).toEqual({ BR: 32, BC: 64, TM: 4, TN: 4, DK: 16, JK: 16, V4: true });
  });
  it('gives D = 256 a 32-key vec4 dK/dV block with 8-wide chunks (the larger ones exceed 48 KiB)', () => {
    const v = chooseVariant(256, H100);
    expect(v.dkdv).toEqual({ BR: 32, BC: 64, TM: 4, TN: 4, DK: 8, JK: 8, V4: true });
    expect(flashBackwardDkdvSharedBytes(256, v.dkdv)).toBeLessThanOrEqual(
      H100.maxComputeWorkgroupStorageSize,
    );
  });
  it('gives software adapters the compact scalar tiles', () => {
    const v = chooseVariant(64, SWIFT, true);
    expect(v.dq.V4).toBeFalsy();
    expect(v.dkdv.V4).toBeFalsy();
  });
});
