/**
 * Operands of an op kernel: named windows (element offset + length) of GPUBuffers, bound so that any
 * of them may share a GPUBuffer. WebGPU forbids binding one GPUBuffer twice in a dispatch when one of
 * the bindings is writable, and the model's operands often share one (the parameters and gradients are
 * views of one allocation each; the conformance suite puts every operand of a case into one buffer).
 * So each distinct GPUBuffer becomes one binding `s<i>` (read_write if any operand on it is written),
 * and the kernel never names a binding: it reads and writes operands through generated accessors
 *
 *   fn ld_<name>(i: u32) -> f32      fn st_<name>(i: u32, v: f32)      (float32 operands)
 *   fn ldi_<name>(i: u32) -> i32      fn sti_<name>(i: u32, v: i32)      (int32 operands)
 *
 * with the operand's element offset in the uniform `o_<name>`. The sharing pattern (which operands
 * share a binding, and its element type) is part of the pipeline cache key.
 */
import type { ProgramBinding, UniformField, UniformValue } from '../program.js';
import type { WebGPUBuffer } from '../memory.js';

export interface Operand {
  /** WGSL-safe name: the accessors are ld_<name> / st_<name> / ldi_<name>. */
  readonly name: string;
  readonly buf: WebGPUBuffer;
  /** Written by the kernel. */
  readonly write?: boolean;
}

export interface BoundOperands {
  /** One binding per distinct GPUBuffer. */
  readonly bindings: readonly ProgramBinding[];
  /** The GPUBuffer of each binding, by binding name (for ProgramManager.run). */
  readonly buffers: Readonly<Record<string, GPUBuffer>>;
  /** One `o_<name>` u32 uniform per operand. */
  readonly uniforms: readonly UniformField[];
  readonly values: Readonly<Record<string, UniformValue>>;
  /** The accessor functions. */
  readonly accessors: string;
  /** The sharing pattern, for the pipeline cache key: e.g. 'f0w.f0.i1'. */
  readonly key: string;
}

export function bindOperands(operands: readonly Operand[]): BoundOperands {
  const slots: { gpu: GPUBuffer; write: boolean; float: boolean; int: boolean }[] = [];
  const slotOf: number[] = [];
  for (const o of operands) {
    const gpu = o.buf.gpuBuffer;
    let s = slots.findIndex((x) => x.gpu === gpu);
    if (s < 0) {
      s = slots.length;
      slots.push({ gpu, write: false, float: false, int: false });
    }
    const slot = slots[s]!;
    slot.write ||= o.write === true;
    if (o.buf.dtype === 'int32') slot.int = true;
    else slot.float = true;
    slotOf.push(s);
  }
  // A buffer holding both float and int operands is bound as raw words and bitcast.
  const elem = (s: (typeof slots)[number]): string =>
    s.float && s.int ? 'u32' : s.int ? 'i32' : 'f32';
  const bindings: ProgramBinding[] = slots.map((s, i) => ({
    name: `s${i}`,
    type: `array<${elem(s)}>`,
    access: s.write ? 'read_write' : 'read',
  }));
  const buffers: Record<string, GPUBuffer> = {};
  slots.forEach((s, i) => (buffers[`s${i}`] = s.gpu));
  const uniforms: UniformField[] = [];
  const values: Record<string, UniformValue> = {};
  let accessors = '';
  const keys: string[] = [];
  operands.forEach((o, k) => {
    const s = slotOf[k]!;
    const e = elem(slots[s]!);
    const at = `s${s}[p.o_${o.name} + i]`;
    uniforms.push({ name: `o_${o.name}`, type: 'u32', comment: `element offset of ${o.name}` });
    values[`o_${o.name}`] = o.buf.offset;
    if (o.buf.dtype === 'int32') {
      accessors += `fn ldi_${o.name}(i: u32) -> i32 { return ${e === 'i32' ? at : `bitcast<i32>(${at})`}; }\n`;
      if (o.write) {
        accessors += `fn sti_${o.name}(i: u32, v: i32) { ${at} = ${e === 'i32' ? 'v' : 'bitcast<u32>(v)'}; }\n`;
      }
      keys.push(`i${s}${o.write ? 'w' : ''}${e === 'u32' ? 'u' : ''}`);
    } else {
      accessors += `fn ld_${o.name}(i: u32) -> f32 { return ${e === 'f32' ? at : `bitcast<f32>(${at})`}; }\n`;
      if (o.write) {
        accessors += `fn st_${o.name}(i: u32, v: f32) { ${at} = ${e === 'f32' ? 'v' : 'bitcast<u32>(v)'}; }\n`;
      }
      keys.push(`f${s}${o.write ? 'w' : ''}${e === 'u32' ? 'u' : ''}`);
    }
  });
  return { bindings, buffers, uniforms, values, accessors, key: keys.join('.') };
}

/**
 * A 2-D dispatch covering `groups` workgroups (x at most the device limit); kernels recover the linear
 * workgroup index as wg.x + wg.y * nw.x and return when it is past the end.
 */
export function grid(groups: number, maxPerDim: number): readonly [number, number, number] {
  if (groups === 0) return [0, 1, 1];
  const x = Math.min(groups, maxPerDim);
  return [x, Math.ceil(groups / x), 1];
}
