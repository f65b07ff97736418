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
//   copyRows(dst, ldd, src, lds, rows, D, Dp)    rows of D floats, zero-padded to Dp (the packs, Q_i)
//   transposeBlocks(dst, src, NPad, Dp, Bk)   (NPad, Dp) rows into (Dp, Bk) blocks (K^T, V^T, Q^T, dO^T)
//   packStrips(dst, src, lds, kc, nc)   a (kc, nc) panel of B (row stride lds) into 8-column strips
//       (kc, 8) one after the other, then a (kc, 4) strip if nc % 8 == 4 (nc % 4 == 0): the gemm's B
//       operand with row stride 32 (16) bytes (matmul-blocked.ts)
//   nonFinite(src, n) -> 1 if one of n floats (n % 4 == 0) is NaN or infinite, else 0
//   scaleRows(dst, ldd, src, lds, rows, D, mul, ldmul)   dst row r = src row r * mul[r] (ldmul bytes
//       apart; 0 = one factor for every row): O_i = acc / l_i, dK, dV, dQ written into their views
// Every element's arithmetic is the same whatever tile or thread computes it: results do not depend on
// the thread count.

export const ZERO = '(v128.const i32x4 0 0 0 0)';
const NEG_INF = '(v128.const f32x4 -inf -inf -inf -inf)';
// -0.0 marks a masked probability (exp never returns it): dS of a masked entry is exactly 0 even where
// dP is not finite (a NaN key or value that the row does not see must not leak into it).
const NEG_ZERO = '(v128.const i32x4 0x80000000 0x80000000 0x80000000 0x80000000)';
const IOTA = '(v128.const i32x4 0 1 2 3)';
export const g = (n) => `(local.get $${n})`;
export const set = (n, x) => `(local.set $${n} ${x})`;
export const i32 = (x) => `(i32.const ${x})`;
export const add = (a, b) => `(i32.add ${a} ${b})`;
export const mul = (a, b) => `(i32.mul ${a} ${b})`;
export const splat = (x) => `(f32x4.splat ${x})`;
export const forLoop = (name, v, end, step, body) => `
    ${set(v, i32(0))}
    (block $${name}_done (loop $${name}
      (br_if $${name}_done (i32.ge_s ${g(v)} ${end}))
      ${body}
      ${set(v, add(g(v), step))}
      (br $${name})))`;

/**
 * exp(x) for four lanes as 2^y, y = x log2(e) = n + r with n = round(y), |r| <= 1/2, 2^r by a degree-6
 * polynomial (least-squares fit of 2^r on [-1/2, 1/2] in relative error, p(0) = 1; max 0.81 ulp with
 * float32 Horner steps), 2^n from the exponent bits. n is rounded with the 1.5 * 2^23 trick, whose
 * float bits also hold n. Against Cephes' expf (two-constant ln 2 range reduction, mul + add Horner):
 * one multiply and one subtraction reduce the range, and the polynomial takes the fused multiply-add
 * where the variant has it: ~17 vector ops a lane group instead of ~30. The scores and lse stay in
 * natural units, so the backward's recomputed P_ij = exp(S_ij - L_i) is exactly 1 where the forward's
 * row saw one key (a base-2 lse did not round-trip: conformance's "q1000 k1 causal" case failed).
 * 2026-12-07 (EPYC Zen 3, load 7-10, CPU time, best of 5): softmaxRows on a 64 x 64 tile 8.45 -> 3.98 us
 * (with the constants hoisted below and the scale-1 path; FMA variant).
 * y is clamped to [-127, 127] (`upper` false: to [-127, inf), for callers whose x <= 0): -Infinity and
 * anything below -126.5 give exactly 0 (n = -127 gives exponent bits 0), NaN stays NaN (pmin/pmax
 * return their first operand when it is NaN; one minps/maxps each).
 * Uses the locals $ex_x, $ex_t, $ex_f.
 */
const EXP2_POLY = [
  '1.537070493e-4',
  '1.339984825e-3',
  '9.618373588e-3',
  '5.550329015e-2',
  '2.402264774e-1',
  '6.931471825e-1',
];
// The constants live in locals set once at the function's entry (EXP_INIT): a v128 constant inside the
// loop is rebuilt on every use by V8's code generator.
const EXP_CONSTS = {
  lo: '-127',
  hi: '127',
  magic: '12582912', // 1.5 * 2^23, bits 0x4B400000
  log2e: '1.44269504088896341',
  one: '1',
  ...Object.fromEntries(EXP2_POLY.map((v, i) => [`p${i}`, v])),
};
export function expV(x, madd, upper = true) {
  const y = `(f32x4.mul ${x} ${g('k_log2e')})`;
  const c = (name) => g(`k_${name}`);
  let p = c('p0');
  for (let i = 1; i < EXP2_POLY.length; i++) p = madd(p, g('ex_x'), c(`p${i}`));
  p = madd(p, g('ex_x'), c('one'));
  const clamped = upper
    ? `(f32x4.pmax (f32x4.pmin ${y} ${c('hi')}) ${c('lo')})`
    : `(f32x4.pmax ${y} ${c('lo')})`;
  return `(block (result v128)
      ${set('ex_f', clamped)}
      ${set('ex_t', `(f32x4.add ${g('ex_f')} ${c('magic')})`)}
      ${set('ex_x', `(f32x4.sub ${g('ex_f')} (f32x4.sub ${g('ex_t')} ${c('magic')}))`)}
      (f32x4.mul ${p}
        (i32x4.shl (i32x4.add ${g('ex_t')} ${g('k_bias')}) (i32.const 23))))`;
}
export const EXP_LOCALS =
  '(local $ex_x v128) (local $ex_t v128) (local $ex_f v128) (local $k_bias v128) ' +
  Object.keys(EXP_CONSTS)
    .map((k) => `(local $k_${k} v128)`)
    .join(' ');
export const EXP_INIT =
  Object.entries(EXP_CONSTS)
    .map(([k, v]) => set(`k_${k}`, splat(`(f32.const ${v})`)))
    .join(' ') + ` ${set('k_bias', `(i32x4.splat (i32.const ${127 - 0x4b400000}))`)}`;

export const hsum = (v) =>
  `(f32.add (f32.add (f32x4.extract_lane 0 ${v}) (f32x4.extract_lane 1 ${v})) (f32.add (f32x4.extract_lane 2 ${v}) (f32x4.extract_lane 3 ${v})))`;
export const hmax = (v) =>
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
  // The A row stride baked into the splats' offsets (one A pointer a step instead of 6) was tried and
  // dropped: 64 x 64 x {64, 128} tiles ran 43.5-45.2 GFLOP/s (CPU time) either way, against a wasm
  // peak of ~48 (2 x 4-lane FMA a cycle at ~3 GHz) (2026-12-07, load 7, /tmp micro-benchmark of gemm).
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
    (local $x v128) (local $mx v128) (local $sc v128) (local $mv v128) (local $sum v128) (local $mOld f32) (local $mNew f32) (local $alpha f32) (local $d i32) (local $ar i32)
    ${EXP_LOCALS}
    ${EXP_INIT}
    ${forLoop(
      'rows',
      'r',
      g('rows'),
      i32(1),
      `${rowBounds}
      ;; line 8 result scaled and masked; m~_ij = rowmax (rows that see the whole tile skip the mask)
      ${set('mx', NEG_INF)}
      ${set('sc', splat(g('scale')))}
      ;; (scale 1: the caller scaled Q_i instead, and an unmasked row is only read here)
      (if (i32.and (i32.le_s ${g('lor')} (i32.const 0)) (i32.ge_s ${g('hir')} ${g('colsPad')}))
        (then
          (if (f32.eq ${g('scale')} (f32.const 1))
            (then
              ${forLoop('c0s', 'c', g('colsPad'), i32(4), set('mx', `(f32x4.pmax ${g('mx')} (v128.load ${at}))`))})
            (else
              ${forLoop(
                'c0u',
                'c',
                g('colsPad'),
                i32(4),
                `${set('x', `(f32x4.mul (v128.load ${at}) ${g('sc')})`)}
                (v128.store ${at} ${g('x')})
                ${set('mx', `(f32x4.pmax ${g('mx')} ${g('x')})`)}`,
              )})))
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
          ${set('alpha', `(f32x4.extract_lane 0 ${expV(splat(`(f32.sub ${g('mOld')} ${g('mNew')})`), madd, false)})`)}
          ${set('mv', splat(g('mNew')))}
          ;; line 9: P~_ij = exp(S_ij - m_new), l_new = alpha l_old + rowsum(P~_ij)
          ${set('sum', ZERO)}
          ${forLoop(
            'c2',
            'c',
            g('colsPad'),
            i32(4),
            `${set('x', expV(`(f32x4.sub (v128.load ${at}) ${g('mv')})`, madd, false))}
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
    (local $r i32) (local $c i32) (local $lor i32) (local $hir i32) (local $row i32) (local $lov v128) (local $hiv v128) (local $idx v128) (local $Lr v128) (local $sc v128)
    ${EXP_LOCALS}
    ${EXP_INIT}
    ${forLoop(
      'rows',
      'r',
      g('rows'),
      i32(1),
      `${rowBounds}
      ${set('Lr', `(v128.load32_splat (i32.add ${g('L')} (i32.shl ${g('r')} (i32.const 2))))`)}
      ${set('sc', splat(g('scale')))}
      ${forLoop(
        'cc',
        'c',
        g('colsPad'),
        i32(4),
        `${cIdx}
        (v128.store ${at} (v128.bitselect ${expV(`(f32x4.sub (f32x4.mul (v128.load ${at}) ${g('sc')}) ${g('Lr')})`, madd)} ${NEG_ZERO} ${rowMask}))`,
      )}`,
    )})`;

  // Columns are queries: lo, hi, L are loaded as vectors at the column, the key index is the row's.
  const colAt = (base) => `(v128.load (i32.add ${g(base)} (i32.shl ${g('c')} (i32.const 2))))`;
  const probsCols = `
  (func (export "probsCols") (param $s i32) (param $lds i32) (param $rows i32) (param $colsPad i32) (param $colsReal i32)
    (param $scale f32) (param $L i32) (param $lo i32) (param $hi i32) (param $k0 i32)
    (local $r i32) (local $c i32) (local $row i32) (local $kv v128) (local $idx v128) (local $ok v128) (local $real v128) (local $sc v128)
    ${EXP_LOCALS}
    ${EXP_INIT}
    ${set('real', `(i32x4.splat ${g('colsReal')})`)}
    ${set('sc', splat(g('scale')))}
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
        (v128.store ${at} (v128.bitselect ${expV(`(f32x4.sub (f32x4.mul (v128.load ${at}) ${g('sc')}) ${colAt('L')})`, madd)} ${NEG_ZERO} ${g('ok')}))`,
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

  // Row copies and scalings in four-lane steps, the last D % 4 floats one at a time; the writes stop at
  // D, so a strided view's neighbours (the packed qkv layout) are never touched.
  // The four-lane steps go through blocks of ROW_BLOCK rows one step of every row at a time (columns
  // outer, rows inner), not row after row: the views' rows are H D floats or more apart (4 KiB at
  // H = 8, D = 128: a page per row), and a row at a time left about one row's cache-line misses in
  // flight; ROW_BLOCK rows' lines (2 x 32 x 64 bytes) stay in L1 across the four steps of a line.
  // 2026-12-07, builds-ab.mjs against cc61baf (alternating in one process, bitwise the same results),
  // N = 1024, H = 8, causal: forward B = 1 one thread D = 128 1.04-1.08x, D = 64 1.00-1.08x; B = 4 two
  // threads D = 64 1.06x, D = 128 1.00x (CPU time 1.03x); backward D = 128 one thread 1.13x (load 1.3-2).
  const ROW_BLOCK = 32;
  const ROW_LOCALS =
    '(local $r i32) (local $d i32) (local $D4 i32) (local $r0 i32) (local $r1 i32) (local $pd i32) (local $ps i32)';
  const perRow = (body, tail, rowStart = '') => `
    ${set('D4', `(i32.and ${g('D')} (i32.const -4))`)}
    ${set('r0', i32(0))}
    (block $rb_done (loop $rb
      (br_if $rb_done (i32.ge_s ${g('r0')} ${g('rows')}))
      ${set('r1', add(g('r0'), i32(ROW_BLOCK)))}
      (if (i32.gt_s ${g('r1')} ${g('rows')}) (then ${set('r1', g('rows'))}))
      ${forLoop(
        'd4',
        'd',
        g('D4'),
        i32(4),
        `${set('pd', add(g('dst'), mul(g('r0'), g('ldd'))))}
        ${set('ps', add(g('src'), mul(g('r0'), g('lds'))))}
        ${set('r', g('r0'))}
        (block $rv_done (loop $rv
          (br_if $rv_done (i32.ge_s ${g('r')} ${g('r1')}))
          ${rowStart}
          ${body}
          ${set('pd', add(g('pd'), g('ldd')))}
          ${set('ps', add(g('ps'), g('lds')))}
          ${set('r', add(g('r'), i32(1)))}
          (br $rv)))`,
      )}
      ${set('r0', g('r1'))}
      (br $rb)))
    (if (i32.lt_s ${g('D4')} ${g('Dp')})
      (then
        ${set('pd', g('dst'))}
        ${set('ps', g('src'))}
        ${forLoop(
          'rt',
          'r',
          g('rows'),
          i32(1),
          `${rowStart}
          ${set('d', g('D4'))}
          (block $t_done (loop $t
            (br_if $t_done (i32.ge_s ${g('d')} ${g('D')}))
            ${tail}
            ${set('d', add(g('d'), i32(1)))}
            (br $t)))
          (block $z_done (loop $z
            (br_if $z_done (i32.ge_s ${g('d')} ${g('Dp')}))
            (f32.store (i32.add ${g('pd')} (i32.shl ${g('d')} (i32.const 2))) (f32.const 0))
            ${set('d', add(g('d'), i32(1)))}
            (br $z)))
          ${set('pd', add(g('pd'), g('ldd')))}
          ${set('ps', add(g('ps'), g('lds')))}`,
        )}))`;
  const dAt = (base) => `(i32.add ${g(base)} (i32.shl ${g('d')} (i32.const 2)))`;
  const copyRows = `
  (func (export "copyRows") (param $dst i32) (param $ldd i32) (param $src i32) (param $lds i32) (param $rows i32) (param $D i32) (param $Dp i32)
    ${ROW_LOCALS}
    ${perRow(`(v128.store ${dAt('pd')} (v128.load ${dAt('ps')}))`, `(f32.store ${dAt('pd')} (f32.load ${dAt('ps')}))`)})`;
  const scaleRows = `
  (func (export "scaleRows") (param $dst i32) (param $ldd i32) (param $src i32) (param $lds i32) (param $rows i32) (param $D i32)
    (param $mul i32) (param $ldmul i32)
    (local $Dp i32) (local $x f32) (local $xv v128) ${ROW_LOCALS}
    ${set('Dp', g('D'))}
    ${perRow(
      `(v128.store ${dAt('pd')} (f32x4.mul (v128.load ${dAt('ps')}) ${g('xv')}))`,
      `(f32.store ${dAt('pd')} (f32.mul (f32.load ${dAt('ps')}) ${g('x')}))`,
      `${set('x', `(f32.load (i32.add ${g('mul')} (i32.mul ${g('r')} ${g('ldmul')})))`)}
      ${set('xv', splat(g('x')))}`,
    )})`;

  // 4 x 4 transposes with shuffles: rows r..r+3, columns d..d+3 of a (Bk, Dp) block of rows into
  // columns r..r+3 of rows d..d+3 of the (Dp, Bk) block.
  const shuf = (lanes, a, b) =>
    `(i8x16.shuffle ${lanes.flatMap((k) => [0, 1, 2, 3].map((x) => 4 * k + x)).join(' ')} ${a} ${b})`;
  const transposeBlocks = `
  (func (export "transposeBlocks") (param $dst i32) (param $src i32) (param $NPad i32) (param $Dp i32) (param $Bk i32)
    (local $t i32) (local $r i32) (local $d i32) (local $s i32) (local $o i32) (local $lds i32) (local $ldo i32)
    (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    ${set('lds', `(i32.shl ${g('Dp')} (i32.const 2))`)}
    ${set('ldo', `(i32.shl ${g('Bk')} (i32.const 2))`)}
    ${forLoop(
      'blk',
      't',
      g('NPad'),
      g('Bk'),
      forLoop(
        'rr',
        'r',
        g('Bk'),
        i32(4),
        forLoop(
          'dd',
          'd',
          g('Dp'),
          i32(4),
          `${set('s', add(g('src'), `(i32.shl (i32.add (i32.mul (i32.add ${g('t')} ${g('r')}) ${g('Dp')}) ${g('d')}) (i32.const 2))`))}
          ${[0, 1, 2, 3].map((x) => set(`v${x}`, `(v128.load ${add(g('s'), mul(g('lds'), i32(x)))})`)).join(' ')}
          ${set('t0', shuf([0, 4, 1, 5], g('v0'), g('v1')))}
          ${set('t1', shuf([2, 6, 3, 7], g('v0'), g('v1')))}
          ${set('t2', shuf([0, 4, 1, 5], g('v2'), g('v3')))}
          ${set('t3', shuf([2, 6, 3, 7], g('v2'), g('v3')))}
          ${set('o', add(g('dst'), `(i32.shl (i32.add (i32.add (i32.mul ${g('t')} ${g('Dp')}) (i32.mul ${g('d')} ${g('Bk')})) ${g('r')}) (i32.const 2))`))}
          (v128.store ${g('o')} ${shuf([0, 1, 4, 5], g('t0'), g('t2'))})
          (v128.store ${add(g('o'), g('ldo'))} ${shuf([2, 3, 6, 7], g('t0'), g('t2'))})
          (v128.store ${add(g('o'), mul(g('ldo'), i32(2)))} ${shuf([0, 1, 4, 5], g('t1'), g('t3'))})
          (v128.store ${add(g('o'), mul(g('ldo'), i32(3)))} ${shuf([2, 3, 6, 7], g('t1'), g('t3'))})`,
        ),
      ),
    )})`;
  const packStrips = `
  (func (export "packStrips") (param $dst i32) (param $src i32) (param $lds i32) (param $kc i32) (param $nc i32)
    (local $j i32) (local $k i32) (local $s i32)
    ${set('j', i32(0))}
    (block $s8_done (loop $s8
      (br_if $s8_done (i32.gt_s (i32.add ${g('j')} (i32.const 8)) ${g('nc')}))
      ${set('s', add(g('src'), `(i32.shl ${g('j')} (i32.const 2))`))}
      ${forLoop(
        'k8',
        'k',
        g('kc'),
        i32(1),
        `(v128.store ${g('dst')} (v128.load ${g('s')}))
        (v128.store offset=16 ${g('dst')} (v128.load offset=16 ${g('s')}))
        ${set('dst', add(g('dst'), i32(32)))}
        ${set('s', add(g('s'), g('lds')))}`,
      )}
      ${set('j', add(g('j'), i32(8)))}
      (br $s8)))
    (if (i32.lt_s ${g('j')} ${g('nc')})
      (then
        ${set('s', add(g('src'), `(i32.shl ${g('j')} (i32.const 2))`))}
        ${forLoop(
          'k4',
          'k',
          g('kc'),
          i32(1),
          `(v128.store ${g('dst')} (v128.load ${g('s')}))
          ${set('dst', add(g('dst'), i32(16)))}
          ${set('s', add(g('s'), g('lds')))}`,
        )})))`;
  const nonFinite = `
  (func (export "nonFinite") (param $src i32) (param $n i32) (result i32)
    (local $i i32) (local $x v128) (local $bad v128)
    ${set('bad', ZERO)}
    ${forLoop(
      'nf',
      'i',
      g('n'),
      i32(4),
      `${set('x', `(v128.load (i32.add ${g('src')} (i32.shl ${g('i')} (i32.const 2))))`)}
      ${set('bad', `(v128.or ${g('bad')} (f32x4.ne (f32x4.sub ${g('x')} ${g('x')}) ${ZERO}))`)}`,
    )}
    (v128.any_true ${g('bad')}))`;

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
${copyRows}
${scaleRows}
${transposeBlocks}
${packStrips}
${nonFinite}
)
`;
}
