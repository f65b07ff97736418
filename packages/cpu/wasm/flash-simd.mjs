// The FlashAttention-2 tile kernels for the CPU, as WebAssembly text with 128-bit SIMD, generated here
// so that the register-tile products and the vector exp are written once. scripts/build-wasm.mjs
// compiles two variants: `fma: true` uses relaxed-SIMD f32x4.relaxed_madd (one fused multiply-add where
// the hardware has it), `fma: false` plain f32x4.mul + f32x4.add; the runtime picks the first it can
// validate. All pointers are byte addresses in the shared memory, all strides (ld*) are in bytes.
//
// Exports (the driver is src/attention/flash-simd.ts):
//   gemm(c, ldc, a, lda, b, ldb, M, N, K, acc)   C (M, N) (+)= A (M, K) @ B (K, N); N % 4 == 0
//   softmaxRows(s, lds, rows, colsPad, colsReal, scale, lo, hi, c0, m, l, acc, ldacc, Dv)
//       Algorithm 1, lines 9-10 for one S_ij tile: mask, m_i, P~_ij (in place), l_i, rescale acc
//   probsRows(s, lds, rows, colsPad, colsReal, scale, L, lo, hi, c0)
//       Algorithm 2, line 11: P_ij = exp(scale S_ij - L_i), masked entries -0.0 (rows = queries)
//   probsCols(s, lds, rows, colsPad, colsReal, scale, L, lo, hi, k0)
//       the same for S_ij^T (rows = keys, columns = queries; L, lo, hi indexed by column)
//   dsRows(p, dp, ld, rows, colsPad, Dvec)   dP <- P * (dP - D_i), 0 where P = -0.0 (masked)
//   dsCols(p, dp, ld, rows, colsPad, Dvec)   dP^T <- P^T * (dP^T - D)  (columns = queries)
// Every element's arithmetic is the same whatever tile or thread computes it: results do not depend on
// the thread count.

const ZERO = '(v128.const i32x4 0 0 0 0)';
const NEG_INF = '(v128.const f32x4 -inf -inf -inf -inf)';
// -0.0 marks a masked probability (exp never returns it): dS of a masked entry is exactly 0 even where
// dP is not finite (a NaN key or value that the row does not see must not leak into it).
const NEG_ZERO = '(v128.const i32x4 0x80000000 0x80000000 0x80000000 0x80000000)';
const IOTA = '(v128.const i32x4 0 1 2 3)';
const g = (n) => `(local.get $${n})`;
const set = (n, x) => `(local.set $${n} ${x})`;
const i32 = (x) => `(i32.const ${x})`;
const add = (a, b) => `(i32.add ${a} ${b})`;
const mul = (a, b) => `(i32.mul ${a} ${b})`;
const splat = (x) => `(f32x4.splat ${x})`;
const forLoop = (name, v, end, step, body) => `
    ${set(v, i32(0))}
    (block $${name}_done (loop $${name}
      (br_if $${name}_done (i32.ge_s ${g(v)} ${end}))
      ${body}
      ${set(v, add(g(v), step))}
      (br $${name})))`;

/**
 * exp(x) for four lanes (Cephes' expf: x = n ln2 + r, |r| <= ln2 / 2, a degree-6 polynomial in r,
 * 2^n from the exponent bits). n is rounded with the 1.5 * 2^23 trick, whose float bits also hold n.
 * x is clamped to [-88, 88]: -Infinity and anything below -87.4 give exactly 0 (n = -127 gives
 * exponent bits 0), NaN stays NaN (pmin/pmax return their first operand when it is NaN; they are one
 * minps/maxps each where f32x4.min/max need a NaN-propagating sequence).
 * Uses the locals $ex_x, $ex_t, $ex_f.
 */
function expV(x) {
  const c = (v) => splat(`(f32.const ${v})`);
  const madd = (a, b, d) => `(f32x4.add (f32x4.mul ${a} ${b}) ${d})`;
  let p = c('1.9875691500e-4');
  for (const k of [
    '1.3981999507e-3',
    '8.3334519073e-3',
    '4.1665795894e-2',
    '1.6666665459e-1',
    '5.0000001201e-1',
  ])
    p = madd(p, g('ex_x'), c(k));
  const MAGIC = '12582912'; // 1.5 * 2^23, bits 0x4B400000
  return `(block (result v128)
      ${set('ex_x', `(f32x4.pmax (f32x4.pmin ${x} ${c('88')}) ${c('-88')})`)}
      ${set('ex_t', madd(g('ex_x'), c('1.44269504088896341'), c(MAGIC)))}
      ${set('ex_f', `(f32x4.sub ${g('ex_t')} ${c(MAGIC)})`)}
      ${set('ex_x', `(f32x4.sub (f32x4.sub ${g('ex_x')} (f32x4.mul ${g('ex_f')} ${c('0.693359375')})) (f32x4.mul ${g('ex_f')} ${c('-2.12194440e-4')}))`)}
      (f32x4.mul
        (f32x4.add (f32x4.add (f32x4.mul (f32x4.mul ${p} ${g('ex_x')}) ${g('ex_x')}) ${g('ex_x')}) ${c('1')})
        (i32x4.shl (i32x4.add ${g('ex_t')} (i32x4.splat (i32.const ${127 - 0x4b400000}))) (i32.const 23))))`;
}
const EXP_LOCALS = '(local $ex_x v128) (local $ex_t v128) (local $ex_f v128)';

const hsum = (v) =>
  `(f32.add (f32.add (f32x4.extract_lane 0 ${v}) (f32x4.extract_lane 1 ${v})) (f32.add (f32x4.extract_lane 2 ${v}) (f32x4.extract_lane 3 ${v})))`;
const hmax = (v) =>
  `(f32.max (f32.max (f32x4.extract_lane 0 ${v}) (f32x4.extract_lane 1 ${v})) (f32.max (f32x4.extract_lane 2 ${v}) (f32x4.extract_lane 3 ${v})))`;

/** An R x 4V register tile of C += A B, K steps: per step V loads of B, R splats of A, R*V multiply-adds. */
function microKernel(R, V, madd) {
  const accs = [];
  for (let r = 0; r < R; r++) for (let v = 0; v < V; v++) accs.push(`c${r}_${v}`);
  const step = [];
  for (let v = 0; v < V; v++) step.push(set(`b${v}`, `(v128.load offset=${16 * v} ${g('pb')})`));
  for (let r = 0; r < R; r++) {
    step.push(set('x', `(v128.load32_splat ${g(`pa${r}`)})`));
    for (let v = 0; v < V; v++)
      step.push(set(`c${r}_${v}`, madd(g('x'), g(`b${v}`), g(`c${r}_${v}`))));
    step.push(set(`pa${r}`, add(g(`pa${r}`), i32(4))));
  }
  step.push(set('pb', add(g('pb'), g('ldb'))));
  const store = [];
  for (let r = 0; r < R; r++)
    for (let v = 0; v < V; v++) {
      const addr = `offset=${16 * v} ${r === 0 ? g('c') : add(g('c'), mul(g('ldc'), i32(r)))}`;
      store.push(`(if ${g('acc')}
        (then (v128.store ${addr} (f32x4.add (v128.load ${addr}) ${g(`c${r}_${v}`)})))
        (else (v128.store ${addr} ${g(`c${r}_${v}`)})))`);
    }
  return `
  (func $mk${R}x${V} (param $c i32) (param $ldc i32) (param $a i32) (param $lda i32) (param $b i32) (param $ldb i32) (param $K i32) (param $acc i32)
    (local $k i32) (local $pb i32) (local $x v128)
    ${Array.from({ length: R }, (_, r) => `(local $pa${r} i32)`).join(' ')}
    ${Array.from({ length: V }, (_, v) => `(local $b${v} v128)`).join(' ')}
    ${accs.map((a) => `(local $${a} v128)`).join(' ')}
    ${accs.map((a) => set(a, ZERO)).join(' ')}
    ${Array.from({ length: R }, (_, r) => set(`pa${r}`, r === 0 ? g('a') : add(g('a'), mul(g('lda'), i32(r))))).join(' ')}
    ${set('pb', g('b'))}
    ${forLoop('k', 'k', g('K'), i32(1), step.join('\n      '))}
    ${store.join('\n    ')})`;
}

export function flashSimdWat({ fma, rowTiles = fma ? [6, 4, 1] : [4, 1] }) {
  const madd = fma
    ? (a, b, c) => `(f32x4.relaxed_madd ${a} ${b} ${c})`
    : (a, b, c) => `(f32x4.add (f32x4.mul ${a} ${b}) ${c})`;
  // Row blocks of rowTiles[0] rows, then of the next sizes for the tail; column panels of 8, then 4.
  // rowTiles: 6 rows (12 accumulators) with FMA, 4 without (mul + add needs a temporary; 6 spills).
  // 2026-12-07 on the 2-core EPYC dev machine (load ~15, CPU time, 64 x 64 x {64, 128} tiles): FMA
  // 31-37 GFLOP/s at 4 rows -> 34-43 at 6; plain 23-31 at 4 rows -> 18-22 at 6.
  const tiles = [];
  for (const R of rowTiles) for (const V of [2, 1]) tiles.push([R, V]);
  const rowLoop = (R, V) => `
      (block $r${R}_done (loop $r${R}
        (br_if $r${R}_done (i32.gt_s (i32.add ${g('i')} (i32.const ${R})) ${g('M')}))
        (call $mk${R}x${V} (i32.add ${g('c')} (i32.add (i32.mul ${g('i')} ${g('ldc')}) (i32.shl ${g('j')} (i32.const 2)))) ${g('ldc')}
          (i32.add ${g('a')} (i32.mul ${g('i')} ${g('lda')})) ${g('lda')} (i32.add ${g('b')} (i32.shl ${g('j')} (i32.const 2))) ${g('ldb')} ${g('K')} ${g('acc')})
        ${set('i', add(g('i'), i32(R)))}
        (br $r${R})))`;
  const panel = (V) => `
      ${set('i', i32(0))}
      ${rowTiles.map((R) => rowLoop(R, V)).join('')}`;
  const gemm = `
  (func (export "gemm") (param $c i32) (param $ldc i32) (param $a i32) (param $lda i32) (param $b i32) (param $ldb i32)
    (param $M i32) (param $N i32) (param $K i32) (param $acc i32)
    (local $i i32) (local $j i32)
    ${set('j', i32(0))}
    (block $j8_done (loop $j8
      (br_if $j8_done (i32.gt_s (i32.add ${g('j')} (i32.const 8)) ${g('N')}))
      ${panel(2)}
      ${set('j', add(g('j'), i32(8)))}
      (br $j8)))
    (block $j4_done (loop $j4
      (br_if $j4_done (i32.gt_s (i32.add ${g('j')} (i32.const 4)) ${g('N')}))
      ${panel(1)}
      ${set('j', add(g('j'), i32(4)))}
      (br $j4))))`;

  // The mask of one row against four key columns: lo <= c0 + c + lane < hi and c + lane < colsReal,
  // with lo, hi already relative to the tile and clipped to colsReal.
  const rowMask = `(v128.and (i32x4.ge_s ${g('idx')} ${g('lov')}) (i32x4.lt_s ${g('idx')} ${g('hiv')}))`;
  const rowBounds = `
      ${set('lor', `(i32.sub (i32.load (i32.add ${g('lo')} (i32.shl ${g('r')} (i32.const 2)))) ${g('c0')})`)}
      ${set('hir', `(i32.sub (i32.load (i32.add ${g('hi')} (i32.shl ${g('r')} (i32.const 2)))) ${g('c0')})`)}
      (if (i32.gt_s ${g('hir')} ${g('colsReal')}) (then ${set('hir', g('colsReal'))}))
      ${set('lov', `(i32x4.splat ${g('lor')})`)}
      ${set('hiv', `(i32x4.splat ${g('hir')})`)}
      ${set('row', add(g('s'), mul(g('r'), g('lds'))))}`;
  const cIdx = set('idx', `(i32x4.add ${IOTA} (i32x4.splat ${g('c')}))`);
  const at = `(i32.add ${g('row')} (i32.shl ${g('c')} (i32.const 2)))`;

  const softmaxRows = `
  (func (export "softmaxRows") (param $s i32) (param $lds i32) (param $rows i32) (param $colsPad i32) (param $colsReal i32)
    (param $scale f32) (param $lo i32) (param $hi i32) (param $c0 i32) (param $m i32) (param $l i32) (param $accp i32) (param $ldacc i32) (param $Dv i32)
    (local $r i32) (local $c i32) (local $lor i32) (local $hir i32) (local $row i32) (local $lov v128) (local $hiv v128) (local $idx v128)
    (local $x v128) (local $mx v128) (local $sc v128) (local $sum v128) (local $mOld f32) (local $mNew f32) (local $alpha f32) (local $d i32) (local $ar i32)
    ${EXP_LOCALS}
    ${forLoop(
      'rows',
      'r',
      g('rows'),
      i32(1),
      `${rowBounds}
      ;; line 8 result scaled and masked; m~_ij = rowmax (rows that see the whole tile skip the mask)
      ${set('mx', NEG_INF)}
      ${set('sc', splat(g('scale')))}
      (if (i32.and (i32.le_s ${g('lor')} (i32.const 0)) (i32.ge_s ${g('hir')} ${g('colsPad')}))
        (then
          ${forLoop(
            'c0u',
            'c',
            g('colsPad'),
            i32(4),
            `${set('x', `(f32x4.mul (v128.load ${at}) ${g('sc')})`)}
            (v128.store ${at} ${g('x')})
            ${set('mx', `(f32x4.pmax ${g('mx')} ${g('x')})`)}`,
          )})
        (else
          ${forLoop(
            'c1',
            'c',
            g('colsPad'),
            i32(4),
            `${cIdx}
            ${set('x', `(v128.bitselect (f32x4.mul (v128.load ${at}) ${g('sc')}) ${NEG_INF} ${rowMask})`)}
            (v128.store ${at} ${g('x')})
            ${set('mx', `(f32x4.pmax ${g('mx')} ${g('x')})`)}`,
          )}))
      ${set('mOld', `(f32.load (i32.add ${g('m')} (i32.shl ${g('r')} (i32.const 2))))`)}
      ${set('mNew', `(f32.max ${g('mOld')} ${hmax(g('mx'))})`)}
      (if (f32.eq ${g('mNew')} (f32.const -inf))
        (then
          ;; no key visible yet: P~ row = 0, state unchanged
          ${forLoop('cz', 'c', g('colsPad'), i32(4), `(v128.store ${at} ${ZERO})`)})
        (else
          ${set('alpha', `(f32x4.extract_lane 0 ${expV(splat(`(f32.sub ${g('mOld')} ${g('mNew')})`))})`)}
          ;; line 9: P~_ij = exp(S_ij - m_new), l_new = alpha l_old + rowsum(P~_ij)
          ${set('sum', ZERO)}
          ${forLoop(
            'c2',
            'c',
            g('colsPad'),
            i32(4),
            `${set('x', expV(`(f32x4.sub (v128.load ${at}) ${splat(g('mNew'))})`))}
            (v128.store ${at} ${g('x')})
            ${set('sum', `(f32x4.add ${g('sum')} ${g('x')})`)}`,
          )}
          (f32.store (i32.add ${g('l')} (i32.shl ${g('r')} (i32.const 2)))
            (f32.add (f32.mul ${g('alpha')} (f32.load (i32.add ${g('l')} (i32.shl ${g('r')} (i32.const 2))))) ${hsum(g('sum'))}))
          (f32.store (i32.add ${g('m')} (i32.shl ${g('r')} (i32.const 2))) ${g('mNew')})
          ;; line 10 (first half): acc = diag(alpha) acc
          (if (f32.ne ${g('alpha')} (f32.const 1))
            (then
              ${set('ar', add(g('accp'), mul(g('r'), g('ldacc'))))}
              ${forLoop(
                'dd',
                'd',
                g('Dv'),
                i32(1),
                `(v128.store (i32.add ${g('ar')} (i32.shl ${g('d')} (i32.const 4)))
                  (f32x4.mul (v128.load (i32.add ${g('ar')} (i32.shl ${g('d')} (i32.const 4)))) ${splat(g('alpha'))}))`,
              )}))))`,
    )})`;

  const probsRows = `
  (func (export "probsRows") (param $s i32) (param $lds i32) (param $rows i32) (param $colsPad i32) (param $colsReal i32)
    (param $scale f32) (param $L i32) (param $lo i32) (param $hi i32) (param $c0 i32)
    (local $r i32) (local $c i32) (local $lor i32) (local $hir i32) (local $row i32) (local $lov v128) (local $hiv v128) (local $idx v128) (local $Lr v128)
    ${EXP_LOCALS}
    ${forLoop(
      'rows',
      'r',
      g('rows'),
      i32(1),
      `${rowBounds}
      ${set('Lr', `(v128.load32_splat (i32.add ${g('L')} (i32.shl ${g('r')} (i32.const 2))))`)}
      ${forLoop(
        'cc',
        'c',
        g('colsPad'),
        i32(4),
        `${cIdx}
        (v128.store ${at} (v128.bitselect ${expV(`(f32x4.sub (f32x4.mul (v128.load ${at}) ${splat(g('scale'))}) ${g('Lr')})`)} ${NEG_ZERO} ${rowMask}))`,
      )}`,
    )})`;

  // Columns are queries: lo, hi, L are loaded as vectors at the column, the key index is the row's.
  const colAt = (base) => `(v128.load (i32.add ${g(base)} (i32.shl ${g('c')} (i32.const 2))))`;
  const probsCols = `
  (func (export "probsCols") (param $s i32) (param $lds i32) (param $rows i32) (param $colsPad i32) (param $colsReal i32)
    (param $scale f32) (param $L i32) (param $lo i32) (param $hi i32) (param $k0 i32)
    (local $r i32) (local $c i32) (local $row i32) (local $kv v128) (local $idx v128) (local $ok v128) (local $real v128)
    ${EXP_LOCALS}
    ${set('real', `(i32x4.splat ${g('colsReal')})`)}
    ${forLoop(
      'rows',
      'r',
      g('rows'),
      i32(1),
      `${set('row', add(g('s'), mul(g('r'), g('lds'))))}
      ${set('kv', `(i32x4.splat (i32.add ${g('k0')} ${g('r')}))`)}
      ${forLoop(
        'cc',
        'c',
        g('colsPad'),
        i32(4),
        `${cIdx}
        ${set('ok', `(v128.and (v128.and (i32x4.ge_s ${g('kv')} ${colAt('lo')}) (i32x4.lt_s ${g('kv')} ${colAt('hi')})) (i32x4.lt_s ${g('idx')} ${g('real')}))`)}
        (v128.store ${at} (v128.bitselect ${expV(`(f32x4.sub (f32x4.mul (v128.load ${at}) ${splat(g('scale'))}) ${colAt('L')})`)} ${NEG_ZERO} ${g('ok')}))`,
      )}`,
    )})`;

  const ds = (name, dOf) => `
  (func (export "${name}") (param $p i32) (param $dp i32) (param $ld i32) (param $rows i32) (param $colsPad i32) (param $D i32)
    (local $r i32) (local $c i32) (local $o i32) (local $Dr v128) (local $pv v128)
    ${forLoop(
      'rows',
      'r',
      g('rows'),
      i32(1),
      `${set('Dr', `(v128.load32_splat (i32.add ${g('D')} (i32.shl ${g('r')} (i32.const 2))))`)}
      ${forLoop(
        'cc',
        'c',
        g('colsPad'),
        i32(4),
        `${set('o', `(i32.add (i32.mul ${g('r')} ${g('ld')}) (i32.shl ${g('c')} (i32.const 2)))`)}
        ${set('pv', `(v128.load (i32.add ${g('p')} ${g('o')}))`)}
        (v128.store (i32.add ${g('dp')} ${g('o')})
          (v128.bitselect ${ZERO} (f32x4.mul ${g('pv')} (f32x4.sub (v128.load (i32.add ${g('dp')} ${g('o')})) ${dOf}))
            (i32x4.eq ${g('pv')} ${NEG_ZERO})))`,
      )}`,
    )})`;

  return `;; Generated by wasm/flash-simd.mjs (fma: ${fma}). Do not edit.
(module
  (import "env" "memory" (memory 1 65536 shared))
${tiles.map(([R, V]) => microKernel(R, V, madd)).join('\n')}
${gemm}
${softmaxRows}
${probsRows}
${probsCols}
${ds('dsRows', g('Dr'))}
${ds('dsCols', `(v128.load (i32.add ${g('D')} (i32.shl ${g('c')} (i32.const 2))))`)}
)
`;
}
