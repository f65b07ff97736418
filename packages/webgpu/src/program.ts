/**
 * Programs and the one manager that runs them (onnxruntime-web's ProgramInfo / ProgramManager, in
 * small). A WebGPU op is described by a `ProgramInfo`: its name, a shader cache key (everything besides
 * the name that changes the WGSL), its uniform fields, its storage bindings, the WGSL body (constants,
 * helpers, workgroup memory and `fn main`) and its dispatch size. The manager writes everything before
 * the body - `enable f16;`, the uniform struct at binding 0 (none when a program has no uniforms), one `var<storage>` per binding in order
 * from binding 1, and an `ld_<name>(i) -> f32` reader for bindings in a storage dtype - caches one
 * pipeline per (name, cache key), packs the uniform values by the declared fields and binds buffers by
 * name. A new op is one small file that returns a ProgramInfo.
 */
import { loadFn, enableFor, arrayType, type StorageKind } from './kernels/storage.wgsl.js';

// GPUBufferUsage.UNIFORM | COPY_DST (spelled out: Node has no such globals without `webgpu`'s).
const UNIFORM_USAGE = 64 | 8;

/** Uniform field types: 32-bit scalars, and `view` = struct View { off, sB, sN, sH } (u32 each). */
export type UniformType = 'u32' | 'i32' | 'f32' | 'view';

export interface UniformField {
  readonly name: string;
  readonly type: UniformType;
  /** Shown beside the field in the generated struct. */
  readonly comment?: string;
}

/** A scalar, or a view's [element offset, batch stride, row stride, head stride]. */
export type UniformValue = number | readonly [number, number, number, number];

export interface ProgramBinding {
  /** WGSL name (and the key of the buffer passed to `run`). */
  readonly name: string;
  /**
   * Element layout: a storage kind (f32, f16, f16x2, bf16x2, any: a tensor in its storage dtype, read
   * through the generated `ld_<name>`), or a WGSL array type written as is ('array<f32>', 'array<u32>',
   * 'array<atomic<u32>>').
   */
  readonly type: StorageKind | `array<${string}>`;
  readonly access: 'read' | 'read_write';
  /** Shape comment, e.g. '(B, Nq, Hq, D)'. */
  readonly shape?: string;
}

export interface ProgramInfo {
  /** Kernel name: 'flash-forward', 'cast-to-view', ... */
  readonly name: string;
  /** Everything else that determines the WGSL (head dim, storage kind, tiles); '' if nothing. */
  readonly cacheKey: string;
  readonly uniforms: readonly UniformField[];
  readonly bindings: readonly ProgramBinding[];
  /** Constants, helpers, workgroup memory and the `@compute ... fn main`: everything after the bindings. */
  readonly body: () => string;
  /** Workgroups (x, y, z). */
  readonly dispatch: readonly [number, number, number];
  /** WGSL extensions to enable besides f16 (enabled when a binding is native f16), e.g. 'subgroups'. */
  readonly extensions?: readonly string[];
}

/** A storage kind's (not a raw array's) binding. */
function isKind(t: ProgramBinding['type']): t is StorageKind {
  return !t.startsWith('array<');
}

interface Layout {
  /** Byte offset of each field. */
  offsets: Map<string, number>;
  bytes: number;
}

/** WGSL uniform layout: scalars 4-byte aligned, View structs 16-byte aligned; size rounded to 16. */
function layoutOf(fields: readonly UniformField[]): Layout {
  const offsets = new Map<string, number>();
  let at = 0;
  for (const f of fields) {
    const align = f.type === 'view' ? 16 : 4;
    at = Math.ceil(at / align) * align;
    offsets.set(f.name, at);
    at += f.type === 'view' ? 16 : 4;
  }
  return { offsets, bytes: Math.max(16, Math.ceil(at / 16) * 16) };
}

/** Pack uniform values by the declared fields; a missing or extra value is a programming error. */
export function packUniforms(
  fields: readonly UniformField[],
  values: Readonly<Record<string, UniformValue>>,
): ArrayBuffer {
  const { offsets, bytes } = layoutOf(fields);
  const buf = new ArrayBuffer(bytes);
  const dv = new DataView(buf);
  for (const f of fields) {
    const x = values[f.name];
    if (x === undefined) throw new Error(`uniform '${f.name}' has no value`);
    const at = offsets.get(f.name)!;
    if (f.type === 'view') {
      if (typeof x === 'number') throw new Error(`uniform '${f.name}' is a view: 4 numbers`);
      for (let i = 0; i < 4; i++) dv.setUint32(at + 4 * i, x[i]!, true);
    } else if (typeof x !== 'number') {
      throw new Error(`uniform '${f.name}' is a scalar`);
    } else if (f.type === 'f32') dv.setFloat32(at, x, true);
    else if (f.type === 'i32') dv.setInt32(at, x, true);
    else dv.setUint32(at, x, true);
  }
  for (const name of Object.keys(values)) {
    if (!offsets.has(name)) throw new Error(`uniform '${name}' is not declared`);
  }
  return buf;
}

/** The WGSL the manager writes before a program's body. */
export function programHeader(
  info: Pick<ProgramInfo, 'uniforms' | 'bindings' | 'extensions'>,
): string {
  const kinds = info.bindings.map((b) => b.type).filter(isKind);
  const ext = info.extensions ?? [];
  let s = kinds.includes('f16') && !ext.includes('f16') ? enableFor('f16') : '';
  for (const e of ext) s += `enable ${e};\n`;
  if (info.uniforms.some((f) => f.type === 'view')) {
    s +=
      '// A strided (B, N, H, D) view: element offset and batch, row, head strides (head dim: 1).\n';
    s += 'struct View { off: u32, sB: u32, sN: u32, sH: u32 }\n';
  }
  if (info.uniforms.length > 0) s += 'struct Params {\n';
  for (const f of info.uniforms) {
    // @align(16) on views: WGSL would place a struct of u32s at 4-byte alignment; packUniforms uses 16
    const decl = f.type === 'view' ? `@align(16) ${f.name}: View` : `${f.name}: ${f.type}`;
    s += `  ${decl},${f.comment ? ` // ${f.comment}` : ''}\n`;
  }
  if (info.uniforms.length > 0) s += '}\n@group(0) @binding(0) var<uniform> p: Params;\n';
  info.bindings.forEach((b, i) => {
    const ty = isKind(b.type) ? arrayType(b.type) : b.type;
    s += `@group(0) @binding(${i + 1}) var<storage, ${b.access}> ${b.name}: ${ty};${b.shape ? ` // ${b.shape}` : ''}\n`;
  });
  for (const b of info.bindings) if (isKind(b.type)) s += loadFn(b.name, b.type);
  return s;
}

/** The whole WGSL of a program. */
export function programSource(info: ProgramInfo): string {
  return `${programHeader(info)}${info.body()}`;
}

/** Caches pipelines per (name, cache key) and records dispatches. One per device. */
export class ProgramManager {
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  /** Uniform buffers of recorded dispatches, destroyed by `releaseUniforms` once their work is submitted. */
  private uniformsInFlight: GPUBuffer[] = [];

  constructor(private readonly device: GPUDevice) {}

  /** The pipeline of a program, compiled on first use. */
  pipeline(info: ProgramInfo): GPUComputePipeline {
    const key = `${info.name}:${info.cacheKey}`;
    let pl = this.pipelines.get(key);
    if (!pl) {
      const module = this.device.createShaderModule({ code: programSource(info), label: key });
      pl = this.device.createComputePipeline({
        layout: 'auto',
        compute: { module, entryPoint: 'main' },
        label: key,
      });
      this.pipelines.set(key, pl);
    }
    return pl;
  }

  /** Pipelines compiled so far. */
  get size(): number {
    return this.pipelines.size;
  }

  /** Record one dispatch of `info` into `pass`: uniforms packed by field, buffers bound by binding name. */
  run(
    pass: GPUComputePassEncoder,
    info: ProgramInfo,
    uniforms: Readonly<Record<string, UniformValue>>,
    buffers: Readonly<Record<string, GPUBuffer>>,
  ): void {
    const [x, y, z] = info.dispatch;
    if (x === 0 || y === 0 || z === 0) return;
    const pl = this.pipeline(info);
    const entries: GPUBindGroupEntry[] = [];
    if (info.uniforms.length > 0) {
      const data = packUniforms(info.uniforms, uniforms);
      const u = this.device.createBuffer({ size: data.byteLength, usage: UNIFORM_USAGE });
      this.device.queue.writeBuffer(u, 0, data);
      this.uniformsInFlight.push(u);
      entries.push({ binding: 0, resource: { buffer: u } });
    }
    info.bindings.forEach((b, i) => {
      const buffer = buffers[b.name];
      if (!buffer) throw new Error(`${info.name}: no buffer for binding '${b.name}'`);
      entries.push({ binding: i + 1, resource: { buffer } });
    });
    const bg = this.device.createBindGroup({ layout: pl.getBindGroupLayout(0), entries });
    pass.setPipeline(pl);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(x, y, z);
  }

  /** Destroy the uniform buffers of dispatches already submitted. */
  releaseUniforms(): void {
    for (const u of this.uniformsInFlight) u.destroy();
    this.uniformsInFlight = [];
  }

  clear(): void {
    this.releaseUniforms();
    this.pipelines.clear();
  }
}
