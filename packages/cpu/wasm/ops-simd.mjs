// The GPT-2 CPU ops with 128-bit wasm SIMD (llm.c's CPU kernels, four lanes at a time), as WebAssembly
// text generated like the attention tiles (flash-simd.mjs, whose exp and loop helpers this reuses).
// scripts/build-wasm.mjs compiles an FMA variant (relaxed madd) and a plain one. Every row or element
// loop runs in four-lane steps and finishes the last n % 4 elements one at a time (`tail`), so any
// length works; sums keep four float32 partial sums (the naive float32 loop keeps one). The scalar JS
// kernels beside them (layernorm.ts, gelu.ts, softmax-xent.ts, adamw.ts) stay the reference and the
// path for float64 buffers and buffers outside the wasm memory (ops/ops-simd.ts dispatches).
// All pointers are byte addresses in the shared memory.
//
// Exports:
//   layernormForward(out, mean, rstd, inp, w, b, N, C, eps)       (N, C) rows, mean/rstd (N)
//   layernormBackward(dinp, dw, db, dout, inp, w, mean, rstd, N, C)  dinp, dw, db accumulated into
//   geluForward(out, inp, n)          out = x sigmoid(2 z), z = k (x + a x^3)   (= 0.5 x (1 + tanh z))
//   geluBackward(dinp, inp, dout, n)  dinp = dout (s + 2 x s (1 - s) k (1 + 3 a x^2)), s = sigmoid(2 z)
//   rowMax(x, n) -> f32               max of n floats (NaN if one is NaN)
//   sumExp(x, n, shift) -> f32        sum of exp(x - shift)
//   expScale(dst, x, n, shift, scale) dst = exp(x - shift) * scale
//   adamw(params, grads, m, v, n, lr, beta1, beta2, eps, wd, c1, c2, 1 - beta1, 1 - beta2)
//       (the caller forms 1 - beta in float64: 1 - fround(0.999) in float32 is 1.3e-5 off, which the
//       conformance suite caught in v)
import {
  EXP_INIT,
  EXP_LOCALS,
  ZERO,
  add,
  expV,
  forLoop,
  g,
  hsum,
  hmax,
  i32,
  set,
  splat,
} from './flash-simd.mjs';

const at = (base, i = 'i') => `(i32.add ${g(base)} (i32.shl ${g(i)} (i32.const 2)))`;
const ld = (base, i) => `(v128.load ${at(base, i)})`;
const lds = (base, i) => `(f32.load ${at(base, i)})`;

/**
 * for i in [0, n): `vec` on four lanes while i + 4 <= n, then `tail` on one; both see $i. `vec` and
 * `tail` are functions of the load/store flavour: ({ L, S, V, op }) with L(base) a load at i, S(base, x)
 * a store, V(x) a splat (scalar: x), op(name) the f32x4.name (scalar: f32.name).
 */
function lanes(n, body, name) {
  const vec = {
    L: (b) => ld(b, 'i'),
    S: (b, x) => `(v128.store ${at(b)} ${x})`,
    V: (x) => splat(x),
    op: (o) => `f32x4.${o}`,
  };
  const one = {
    L: (b) => lds(b, 'i'),
    S: (b, x) => `(f32.store ${at(b)} ${x})`,
    V: (x) => x,
    op: (o) => `f32.${o}`,
  };
  return `
    ${set('i', i32(0))}
    (block $${name}_v_done (loop $${name}_v
      (br_if $${name}_v_done (i32.gt_s (i32.add ${g('i')} (i32.const 4)) ${n}))
      ${body(vec)}
      ${set('i', add(g('i'), i32(4)))}
      (br $${name}_v)))
    (block $${name}_s_done (loop $${name}_s
      (br_if $${name}_s_done (i32.ge_s ${g('i')} ${n}))
      ${body(one)}
      ${set('i', add(g('i'), i32(1)))}
      (br $${name}_s)))`;
}

export function opsSimdWat({ fma }) {
  const madd = fma
    ? (a, b, c) => `(f32x4.relaxed_madd ${a} ${b} ${c})`
    : (a, b, c) => `(f32x4.add (f32x4.mul ${a} ${b}) ${c})`;
  // exp on one float: the vector exp on a splat, lane 0
  const expS = (x) => `(f32x4.extract_lane 0 ${expV(splat(x), madd)})`;
  const expAny = (f, x) => (f.op('add').startsWith('f32x4') ? expV(x, madd) : expS(x));

  // ---- layernorm (llm.c layernorm_forward / layernorm_backward) ----
  const lnForward = `
  (func (export "layernormForward") (param $out i32) (param $mean i32) (param $rstd i32) (param $inp i32) (param $w i32) (param $b i32)
    (param $N i32) (param $C i32) (param $eps f32)
    (local $r i32) (local $i i32) (local $x i32) (local $o i32) (local $vs v128) (local $s f32) (local $m f32) (local $rs f32)
    (local $d v128) (local $ds f32)
    ${forLoop(
      'rows',
      'r',
      g('N'),
      i32(1),
      `${set('x', add(g('inp'), `(i32.shl (i32.mul ${g('r')} ${g('C')}) (i32.const 2))`))}
      ${set('o', add(g('out'), `(i32.shl (i32.mul ${g('r')} ${g('C')}) (i32.const 2))`))}
      ;; mean
      ${set('vs', ZERO)} ${set('s', '(f32.const 0)')}
      ${lanes(g('C'), (f) => (f.op('add').startsWith('f32x4') ? set('vs', `(f32x4.add ${g('vs')} ${f.L('x')})`) : set('s', `(f32.add ${g('s')} ${f.L('x')})`)), 'sum')}
      ${set('m', `(f32.div (f32.add ${hsum(g('vs'))} ${g('s')}) (f32.convert_i32_s ${g('C')}))`)}
      ;; variance (two passes, as llm.c)
      ${set('vs', ZERO)} ${set('s', '(f32.const 0)')}
      ${lanes(
        g('C'),
        (f) =>
          f.op('add').startsWith('f32x4')
            ? `${set('d', `(f32x4.sub ${f.L('x')} ${splat(g('m'))})`)} ${set('vs', madd(g('d'), g('d'), g('vs')))}`
            : `${set('ds', `(f32.sub ${f.L('x')} ${g('m')})`)} ${set('s', `(f32.add ${g('s')} (f32.mul ${g('ds')} ${g('ds')}))`)}`,
        'var',
      )}
      ${set('rs', `(f32.div (f32.const 1) (f32.sqrt (f32.add (f32.div (f32.add ${hsum(g('vs'))} ${g('s')}) (f32.convert_i32_s ${g('C')})) ${g('eps')})))`)}
      ;; out = (x - mean) rstd w + b
      ${lanes(
        g('C'),
        (f) =>
          f.S(
            'o',
            `(${f.op('add')} (${f.op('mul')} (${f.op('mul')} (${f.op('sub')} ${f.L('x')} ${f.V(g('m'))}) ${f.V(g('rs'))}) ${f.L('w')}) ${f.L('b')})`,
          ),
        'out',
      )}
      (f32.store (i32.add ${g('mean')} (i32.shl ${g('r')} (i32.const 2))) ${g('m')})
      (f32.store (i32.add ${g('rstd')} (i32.shl ${g('r')} (i32.const 2))) ${g('rs')})`,
    )})`;

  // dx = rstd (dnorm - mean(dnorm) - xhat mean(dnorm xhat)), dnorm = dout w; dw += dout xhat; db += dout
  const lnBackward = `
  (func (export "layernormBackward") (param $dinp i32) (param $dw i32) (param $db i32) (param $dout i32) (param $inp i32) (param $w i32)
    (param $mean i32) (param $rstd i32) (param $N i32) (param $C i32)
    (local $r i32) (local $i i32) (local $x i32) (local $go i32) (local $dx i32) (local $m f32) (local $rs f32)
    (local $va v128) (local $vb v128) (local $sa f32) (local $sb f32) (local $xh v128) (local $dn v128) (local $xs f32) (local $dns f32)
    (local $ma f32) (local $mb f32)
    ${forLoop(
      'rows',
      'r',
      g('N'),
      i32(1),
      `${set('x', add(g('inp'), `(i32.shl (i32.mul ${g('r')} ${g('C')}) (i32.const 2))`))}
      ${set('go', add(g('dout'), `(i32.shl (i32.mul ${g('r')} ${g('C')}) (i32.const 2))`))}
      ${set('dx', add(g('dinp'), `(i32.shl (i32.mul ${g('r')} ${g('C')}) (i32.const 2))`))}
      ${set('m', `(f32.load (i32.add ${g('mean')} (i32.shl ${g('r')} (i32.const 2))))`)}
      ${set('rs', `(f32.load (i32.add ${g('rstd')} (i32.shl ${g('r')} (i32.const 2))))`)}
      ${set('va', ZERO)} ${set('vb', ZERO)} ${set('sa', '(f32.const 0)')} ${set('sb', '(f32.const 0)')}
      ${lanes(
        g('C'),
        (f) =>
          f.op('add').startsWith('f32x4')
            ? `${set('xh', `(f32x4.mul (f32x4.sub ${f.L('x')} ${splat(g('m'))}) ${splat(g('rs'))})`)}
              ${set('dn', `(f32x4.mul ${f.L('go')} ${f.L('w')})`)}
              ${set('va', `(f32x4.add ${g('va')} ${g('dn')})`)}
              ${set('vb', madd(g('dn'), g('xh'), g('vb')))}`
            : `${set('xs', `(f32.mul (f32.sub ${f.L('x')} ${g('m')}) ${g('rs')})`)}
              ${set('dns', `(f32.mul ${f.L('go')} ${f.L('w')})`)}
              ${set('sa', `(f32.add ${g('sa')} ${g('dns')})`)}
              ${set('sb', `(f32.add ${g('sb')} (f32.mul ${g('dns')} ${g('xs')}))`)}`,
        'sums',
      )}
      ${set('ma', `(f32.div (f32.add ${hsum(g('va'))} ${g('sa')}) (f32.convert_i32_s ${g('C')}))`)}
      ${set('mb', `(f32.div (f32.add ${hsum(g('vb'))} ${g('sb')}) (f32.convert_i32_s ${g('C')}))`)}
      ${lanes(
        g('C'),
        (f) => {
          const xh = `(${f.op('mul')} (${f.op('sub')} ${f.L('x')} ${f.V(g('m'))}) ${f.V(g('rs'))})`;
          const gv = f.L('go');
          return `${f.S('db', `(${f.op('add')} ${f.L('db')} ${gv})`)}
            ${f.S('dw', `(${f.op('add')} ${f.L('dw')} (${f.op('mul')} ${gv} ${xh}))`)}
            ${f.S(
              'dx',
              `(${f.op('add')} ${f.L('dx')} (${f.op('mul')} ${f.V(g('rs'))} (${f.op('sub')} (${f.op('sub')} (${f.op('mul')} ${gv} ${f.L('w')}) ${f.V(g('ma'))}) (${f.op('mul')} ${xh} ${f.V(g('mb'))}))))`,
            )}`;
        },
        'grads',
      )}`,
    )})`;

  // ---- GELU (tanh form) through the logistic: 0.5 (1 + tanh z) = s = 1 / (1 + e), e = exp(-2 z); no
  // cancellation in 1 + tanh z for x << 0, and s (1 - s) = e s^2 without 1 - s. ----
  const K = Math.sqrt(2 / Math.PI);
  const A = 0.044715;
  const geluS = (f, x) =>
    // e = exp(-2 z), z = k (x + a x^3)
    expAny(
      f,
      `(${f.op('mul')} ${f.V(`(f32.const ${-2 * K})`)} (${f.op('add')} ${x} (${f.op('mul')} ${f.V(`(f32.const ${A})`)} (${f.op('mul')} ${x} (${f.op('mul')} ${x} ${x})))))`,
    );
  const geluForward = `
  (func (export "geluForward") (param $out i32) (param $inp i32) (param $n i32)
    (local $i i32) ${EXP_LOCALS}
    ${EXP_INIT}
    ${lanes(
      g('n'),
      (f) =>
        f.S(
          'out',
          `(${f.op('div')} ${f.L('inp')} (${f.op('add')} ${f.V('(f32.const 1)')} ${geluS(f, f.L('inp'))}))`,
        ),
      'gelu',
    )})`;
  const geluBackward = `
  (func (export "geluBackward") (param $dinp i32) (param $inp i32) (param $dout i32) (param $n i32)
    (local $i i32) (local $e v128) (local $s v128) (local $x v128) (local $es f32) (local $ss f32) (local $xs f32) ${EXP_LOCALS}
    ${EXP_INIT}
    ${lanes(
      g('n'),
      (f) => {
        const v = f.op('add').startsWith('f32x4');
        const [E, S, X] = v ? ['e', 's', 'x'] : ['es', 'ss', 'xs'];
        const o = f.op;
        const c = (k) => f.V(`(f32.const ${k})`);
        return `${set(X, f.L('inp'))}
          ${set(E, geluS(f, g(X)))}
          ${set(S, `(${o('div')} ${c(1)} (${o('add')} ${c(1)} ${g(E)}))`)}
          ;; local = s + 2 x e s^2 k (1 + 3 a x^2)
          ${f.S(
            'dinp',
            `(${o('mul')} ${f.L('dout')} (${o('add')} ${g(S)} (${o('mul')} (${o('mul')} (${o('mul')} ${c(2 * K)} ${g(X)}) (${o('mul')} ${g(E)} (${o('mul')} ${g(S)} ${g(S)}))) (${o('add')} ${c(1)} (${o('mul')} ${c(3 * A)} (${o('mul')} ${g(X)} ${g(X)}))))))`,
          )}`;
      },
      'geluB',
    )})`;

  // ---- softmax cross-entropy pieces (the per-row log and target stay in JS) ----
  const rowMax = `
  (func (export "rowMax") (param $x i32) (param $n i32) (result f32)
    (local $i i32) (local $vm v128) (local $sm f32)
    ${set('vm', splat('(f32.const -inf)'))} ${set('sm', '(f32.const -inf)')}
    ${lanes(
      g('n'),
      (f) =>
        f.op('add').startsWith('f32x4')
          ? set('vm', `(f32x4.max ${g('vm')} ${f.L('x')})`)
          : set('sm', `(f32.max ${g('sm')} ${f.L('x')})`),
      'max',
    )}
    (f32.max ${hmax(g('vm'))} ${g('sm')}))`;
  const sumExp = `
  (func (export "sumExp") (param $x i32) (param $n i32) (param $shift f32) (result f32)
    (local $i i32) (local $vs v128) (local $ss f32) ${EXP_LOCALS}
    ${EXP_INIT}
    ${set('vs', ZERO)} ${set('ss', '(f32.const 0)')}
    ${lanes(
      g('n'),
      (f) =>
        f.op('add').startsWith('f32x4')
          ? set(
              'vs',
              `(f32x4.add ${g('vs')} ${expV(`(f32x4.sub ${f.L('x')} ${splat(g('shift'))})`, madd)})`,
            )
          : set('ss', `(f32.add ${g('ss')} ${expS(`(f32.sub ${f.L('x')} ${g('shift')})`)})`),
      'sum',
    )}
    (f32.add ${hsum(g('vs'))} ${g('ss')}))`;
  const expScale = `
  (func (export "expScale") (param $dst i32) (param $x i32) (param $n i32) (param $shift f32) (param $scale f32)
    (local $i i32) ${EXP_LOCALS}
    ${EXP_INIT}
    ${lanes(
      g('n'),
      (f) =>
        f.S(
          'dst',
          `(${f.op('mul')} ${expAny(f, `(${f.op('sub')} ${f.L('x')} ${f.V(g('shift'))})`)} ${f.V(g('scale'))})`,
        ),
      'es',
    )})`;

  // ---- AdamW (bias-corrected, decoupled weight decay), c1 = 1 - beta1^t, c2 = 1 - beta2^t ----
  const adamw = `
  (func (export "adamw") (param $p i32) (param $gr i32) (param $m i32) (param $v i32) (param $n i32)
    (param $lr f32) (param $b1 f32) (param $b2 f32) (param $eps f32) (param $wd f32) (param $c1 f32) (param $c2 f32)
    (param $omb1 f32) (param $omb2 f32)
    (local $i i32) (local $gv v128) (local $mv v128) (local $vv v128) (local $pv v128) (local $gs f32) (local $ms f32) (local $vs f32) (local $ps f32)
    ${lanes(
      g('n'),
      (f) => {
        const v = f.op('add').startsWith('f32x4');
        const [G, M, Vv, P] = v ? ['gv', 'mv', 'vv', 'pv'] : ['gs', 'ms', 'vs', 'ps'];
        const o = f.op;
        return `${set(G, f.L('gr'))}
          ${set(M, `(${o('add')} (${o('mul')} ${f.V(g('b1'))} ${f.L('m')}) (${o('mul')} ${f.V(g('omb1'))} ${g(G)}))`)}
          ${set(Vv, `(${o('add')} (${o('mul')} ${f.V(g('b2'))} ${f.L('v')}) (${o('mul')} ${f.V(g('omb2'))} (${o('mul')} ${g(G)} ${g(G)})))`)}
          ${f.S('m', g(M))}
          ${f.S('v', g(Vv))}
          ${set(P, f.L('p'))}
          ${f.S(
            'p',
            `(${o('sub')} ${g(P)} (${o('mul')} ${f.V(g('lr'))} (${o('add')} (${o('div')} (${o('div')} ${g(M)} ${f.V(g('c1'))}) (${o('add')} (${o('sqrt')} (${o('div')} ${g(Vv)} ${f.V(g('c2'))})) ${f.V(g('eps'))})) (${o('mul')} ${f.V(g('wd'))} ${g(P)}))))`,
          )}`;
      },
      'adam',
    )})`;

  return `;; Generated by wasm/ops-simd.mjs (fma: ${fma}). Do not edit.
(module
  (import "env" "memory" (memory 1 65536 shared))
${lnForward}
${lnBackward}
${geluForward}
${geluBackward}
${rowMax}
${sumExp}
${expScale}
${adamw}
)
`;
}
