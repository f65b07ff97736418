;; f32 matmul micro-kernels with 128-bit SIMD, for @flashattn/transformer's CPU ops.
;; Operands are packed K-contiguous (as in matmul-kernel.ts): Ap (M, K), Bp (N, K); K % 4 == 0.
;; Each output C[i, j] = sum_k Ap[i, k] * Bp[j, k], accumulated in 4 float32 lanes (k mod 4) and
;; summed at the end; then stored as  C = s (+ bias[j])  or  C += s  (accumulate).
;; Built with wabt: node scripts/build-wasm.mjs  (writes src/ops/cpu/matmul-simd.wasm.ts).
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; Store one finished dot product s into C at byte address $cp.
  (func $store (param $cp i32) (param $s f32) (param $bp i32) (param $mode i32)
    ;; mode: 0 = overwrite, 1 = overwrite + bias (bias value at $bp), 2 = accumulate
    (if (i32.eq (local.get $mode) (i32.const 2))
      (then (f32.store (local.get $cp) (f32.add (f32.load (local.get $cp)) (local.get $s))))
      (else
        (if (i32.eq (local.get $mode) (i32.const 1))
          (then (f32.store (local.get $cp) (f32.add (local.get $s) (f32.load (local.get $bp)))))
          (else (f32.store (local.get $cp) (local.get $s)))))))

  (func $hsum (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; 4 rows x columns [j0, j1): C rows at $c (row stride $N floats), A rows at $a (stride $K floats),
  ;; B rows (= output columns) at $b (stride $K floats); bias at $bias (used when mode == 1).
  (func (export "block4")
    (param $c i32) (param $a i32) (param $b i32) (param $bias i32)
    (param $N i32) (param $K i32) (param $j0 i32) (param $j1 i32) (param $mode i32)
    (local $ks i32) (local $cs i32) (local $j i32) (local $k i32)
    (local $a0 i32) (local $a1 i32) (local $a2 i32) (local $a3 i32) (local $b0 i32) (local $b1 i32)
    (local $y0 v128) (local $y1 v128) (local $x v128)
    (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
    (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
    (local $cp i32)
    (local.set $ks (i32.shl (local.get $K) (i32.const 2)))  ;; bytes per A/B row
    (local.set $cs (i32.shl (local.get $N) (i32.const 2)))  ;; bytes per C row
    (local.set $a0 (local.get $a))
    (local.set $a1 (i32.add (local.get $a0) (local.get $ks)))
    (local.set $a2 (i32.add (local.get $a1) (local.get $ks)))
    (local.set $a3 (i32.add (local.get $a2) (local.get $ks)))
    (local.set $j (local.get $j0))
    ;; pairs of columns
    (block $done2
      (loop $cols2
        (br_if $done2 (i32.gt_s (i32.add (local.get $j) (i32.const 2)) (local.get $j1)))
        (local.set $b0 (i32.add (local.get $b) (i32.mul (local.get $j) (local.get $ks))))
        (local.set $b1 (i32.add (local.get $b0) (local.get $ks)))
        (local.set $c00 (v128.const i32x4 0 0 0 0)) (local.set $c01 (v128.const i32x4 0 0 0 0))
        (local.set $c10 (v128.const i32x4 0 0 0 0)) (local.set $c11 (v128.const i32x4 0 0 0 0))
        (local.set $c20 (v128.const i32x4 0 0 0 0)) (local.set $c21 (v128.const i32x4 0 0 0 0))
        (local.set $c30 (v128.const i32x4 0 0 0 0)) (local.set $c31 (v128.const i32x4 0 0 0 0))
        (local.set $k (i32.const 0))
        (block $kdone
          (loop $kloop
            (br_if $kdone (i32.ge_s (local.get $k) (local.get $ks)))
            (local.set $y0 (v128.load (i32.add (local.get $b0) (local.get $k))))
            (local.set $y1 (v128.load (i32.add (local.get $b1) (local.get $k))))
            (local.set $x (v128.load (i32.add (local.get $a0) (local.get $k))))
            (local.set $c00 (f32x4.add (local.get $c00) (f32x4.mul (local.get $x) (local.get $y0))))
            (local.set $c01 (f32x4.add (local.get $c01) (f32x4.mul (local.get $x) (local.get $y1))))
            (local.set $x (v128.load (i32.add (local.get $a1) (local.get $k))))
            (local.set $c10 (f32x4.add (local.get $c10) (f32x4.mul (local.get $x) (local.get $y0))))
            (local.set $c11 (f32x4.add (local.get $c11) (f32x4.mul (local.get $x) (local.get $y1))))
            (local.set $x (v128.load (i32.add (local.get $a2) (local.get $k))))
            (local.set $c20 (f32x4.add (local.get $c20) (f32x4.mul (local.get $x) (local.get $y0))))
            (local.set $c21 (f32x4.add (local.get $c21) (f32x4.mul (local.get $x) (local.get $y1))))
            (local.set $x (v128.load (i32.add (local.get $a3) (local.get $k))))
            (local.set $c30 (f32x4.add (local.get $c30) (f32x4.mul (local.get $x) (local.get $y0))))
            (local.set $c31 (f32x4.add (local.get $c31) (f32x4.mul (local.get $x) (local.get $y1))))
            (local.set $k (i32.add (local.get $k) (i32.const 16)))
            (br $kloop)))
        (local.set $cp (i32.add (local.get $c) (i32.shl (local.get $j) (i32.const 2))))
        (call $store (local.get $cp) (call $hsum (local.get $c00)) (i32.add (local.get $bias) (i32.shl (local.get $j) (i32.const 2))) (local.get $mode))
        (call $store (i32.add (local.get $cp) (i32.const 4)) (call $hsum (local.get $c01)) (i32.add (local.get $bias) (i32.shl (i32.add (local.get $j) (i32.const 1)) (i32.const 2))) (local.get $mode))
        (local.set $cp (i32.add (local.get $cp) (local.get $cs)))
        (call $store (local.get $cp) (call $hsum (local.get $c10)) (i32.add (local.get $bias) (i32.shl (local.get $j) (i32.const 2))) (local.get $mode))
        (call $store (i32.add (local.get $cp) (i32.const 4)) (call $hsum (local.get $c11)) (i32.add (local.get $bias) (i32.shl (i32.add (local.get $j) (i32.const 1)) (i32.const 2))) (local.get $mode))
        (local.set $cp (i32.add (local.get $cp) (local.get $cs)))
        (call $store (local.get $cp) (call $hsum (local.get $c20)) (i32.add (local.get $bias) (i32.shl (local.get $j) (i32.const 2))) (local.get $mode))
        (call $store (i32.add (local.get $cp) (i32.const 4)) (call $hsum (local.get $c21)) (i32.add (local.get $bias) (i32.shl (i32.add (local.get $j) (i32.const 1)) (i32.const 2))) (local.get $mode))
        (local.set $cp (i32.add (local.get $cp) (local.get $cs)))
        (call $store (local.get $cp) (call $hsum (local.get $c30)) (i32.add (local.get $bias) (i32.shl (local.get $j) (i32.const 2))) (local.get $mode))
        (call $store (i32.add (local.get $cp) (i32.const 4)) (call $hsum (local.get $c31)) (i32.add (local.get $bias) (i32.shl (i32.add (local.get $j) (i32.const 1)) (i32.const 2))) (local.get $mode))
        (local.set $j (i32.add (local.get $j) (i32.const 2)))
        (br $cols2)))
    ;; a last odd column: four single dot products
    (if (i32.lt_s (local.get $j) (local.get $j1))
      (then
        (call $row1 (local.get $c) (local.get $a0) (local.get $b) (local.get $bias) (local.get $N) (local.get $K) (local.get $j) (local.get $j1) (local.get $mode))
        (call $row1 (i32.add (local.get $c) (local.get $cs)) (local.get $a1) (local.get $b) (local.get $bias) (local.get $N) (local.get $K) (local.get $j) (local.get $j1) (local.get $mode))
        (call $row1 (i32.add (local.get $c) (i32.mul (local.get $cs) (i32.const 2))) (local.get $a2) (local.get $b) (local.get $bias) (local.get $N) (local.get $K) (local.get $j) (local.get $j1) (local.get $mode))
        (call $row1 (i32.add (local.get $c) (i32.mul (local.get $cs) (i32.const 3))) (local.get $a3) (local.get $b) (local.get $bias) (local.get $N) (local.get $K) (local.get $j) (local.get $j1) (local.get $mode)))))

  ;; 1 row x columns [j0, j1), same conventions.
  (func $row1 (export "row1")
    (param $c i32) (param $a i32) (param $b i32) (param $bias i32)
    (param $N i32) (param $K i32) (param $j0 i32) (param $j1 i32) (param $mode i32)
    (local $ks i32) (local $j i32) (local $k i32) (local $b0 i32) (local $acc v128)
    (local.set $ks (i32.shl (local.get $K) (i32.const 2)))
    (local.set $j (local.get $j0))
    (block $done
      (loop $cols
        (br_if $done (i32.ge_s (local.get $j) (local.get $j1)))
        (local.set $b0 (i32.add (local.get $b) (i32.mul (local.get $j) (local.get $ks))))
        (local.set $acc (v128.const i32x4 0 0 0 0))
        (local.set $k (i32.const 0))
        (block $kdone
          (loop $kloop
            (br_if $kdone (i32.ge_s (local.get $k) (local.get $ks)))
            (local.set $acc (f32x4.add (local.get $acc)
              (f32x4.mul (v128.load (i32.add (local.get $a) (local.get $k))) (v128.load (i32.add (local.get $b0) (local.get $k))))))
            (local.set $k (i32.add (local.get $k) (i32.const 16)))
            (br $kloop)))
        (call $store (i32.add (local.get $c) (i32.shl (local.get $j) (i32.const 2))) (call $hsum (local.get $acc))
          (i32.add (local.get $bias) (i32.shl (local.get $j) (i32.const 2))) (local.get $mode))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $cols))))
)
