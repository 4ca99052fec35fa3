;; The inner loops of the fused kernels in WebAssembly SIMD (f32x4), working
;; in place on the tensors that tfjs's wasm backend keeps in its own memory:
;; this module imports that memory, so every pointer below is a byte offset
;; into it and nothing is copied. One module, because they share one exp.
;;
;; Attention (kernels/attention.ts): attendRow, for each head and query row,
;; over one or more frames of entries (see src/cache/types.ts), in three steps:
;;
;;   max  = scores(q, keys, n, dim, scale, s)       s[j] = scale * q . key_j
;;   z    = exps(s, n, max, 1)                      s[j] = exp(s[j] - max)
;;          weightedSum(s, values, n, dim, 1/z, out, accumulate)
;;                                                  out += sum_j s[j]/z * value_j
;;
;; Keys and values are rows of `dim` floats, one after another; `dim` must be
;; a multiple of 4 (the callers fall back to plain JavaScript otherwise).
;;
;; attendRows runs attendRow over a list of (head, query row) items, each
;; item's record saying where its query, keys and output are: the worker pool
;; (kernels/pooled_attention.ts) splits such a list over its threads. For the
;; pool this source is also assembled with a shared memory import
;; (loops.shared.wasm.ts, scripts/assemble_wasm.ts): its threads instantiate
;; that one on the pool's memory.
;;
;; Token NLLs (kernels/token_nll.ts): maxOf and exps (not storing) give a
;; row's log-sum-exp; sumsOfExps does both for a range of rows, a pool's share.
;; SwiGLU (kernels/swiglu.ts): swiglu, for hidden sizes a multiple of 4;
;; swigluRange, a pool's share of rows (kernels/pooled_swiglu.ts).
;; The pooled layers (src/model/pooled_layers.ts): rmsNormRows, a norm into a
;; product's operand (kernels/split_products.ts), and addInto, the residual
;; adds, on the pool's memory from the calling thread.
;; Greedy decoding (kernels/logits_argmax.ts): argmaxFinite, and pickRows, a
;; pool's share of it in the classifier's job, and pickOfClaims, the pick
;; from those shares (kernels/split_products.ts).
;; A decode step as pool jobs (kernels/pool.ts): normOperand, the input norm
;; into a product's operand; qkvRope, the head split and RoPE of one token
;; into a cache's slot and attention's queries (kernels/qkv_rope.ts); a
;; decode program's per-token words (kernels/decode_patch.ts): patchDecodeLayers,
;; and RoPE's angles of a position (ropeAngles).
;;
;; Assembled by scripts/assemble_wasm.ts into loops.wasm.ts.
(module
  (import "env" "memory" (memory 1))


  ;; The largest of the four lanes.
  (func $maxLanes (param $v v128) (result f32)
    (f32.max
      (f32.max (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.max (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; The sum of the four lanes.
  (func $sumLanes (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; s[j] = scale * (q . key_j) for j < n, key_j at keys + j * dim floats.
  ;; Returns the largest score (-inf when n = 0).
  (func $scores (export "scores")
    (param $q i32) (param $keys i32) (param $n i32) (param $dim i32) (param $scale f32) (param $s i32)
    (result f32)
    (local $row i32) (local $end i32) (local $j i32) (local $c i32)
    (local $k0 i32) (local $k1 i32) (local $k2 i32) (local $k3 i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $qc v128)
    (local $out v128) (local $max v128) (local $ab v128) (local $cd v128) (local $sum f32)
    (local.set $row (i32.shl (local.get $dim) (i32.const 2))) ;; bytes per key
    (local.set $max (f32x4.splat (f32.const -inf)))
    ;; Four keys at a time: each chunk of q is loaded once for all four.
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (block $done4
      (loop $keys4
        (br_if $done4 (i32.ge_u (local.get $j) (local.get $end)))
        (local.set $k0 (i32.add (local.get $keys) (i32.mul (local.get $j) (local.get $row))))
        (local.set $k1 (i32.add (local.get $k0) (local.get $row)))
        (local.set $k2 (i32.add (local.get $k1) (local.get $row)))
        (local.set $k3 (i32.add (local.get $k2) (local.get $row)))
        (local.set $a0 (v128.const i32x4 0 0 0 0))
        (local.set $a1 (v128.const i32x4 0 0 0 0))
        (local.set $a2 (v128.const i32x4 0 0 0 0))
        (local.set $a3 (v128.const i32x4 0 0 0 0))
        (local.set $c (i32.const 0))
        (loop $chunks
          (local.set $qc (v128.load (i32.add (local.get $q) (local.get $c))))
          (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $qc) (v128.load (i32.add (local.get $k0) (local.get $c))))))
          (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $qc) (v128.load (i32.add (local.get $k1) (local.get $c))))))
          (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $qc) (v128.load (i32.add (local.get $k2) (local.get $c))))))
          (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $qc) (v128.load (i32.add (local.get $k3) (local.get $c))))))
          (local.set $c (i32.add (local.get $c) (i32.const 16)))
          (br_if $chunks (i32.lt_u (local.get $c) (local.get $row))))
        ;; [sum a0, sum a1, sum a2, sum a3], four horizontal sums at once,
        ;; written out here rather than a call: V8 (Node 20) does not inline
        ;; WebAssembly calls, and a small callee spends its own tier-up budget
        ;; a few bytes a call (as a function it reached TurboFan at token 38).
        ;; ab = [a0_0+a0_2, a0_1+a0_3, a1_0+a1_2, a1_1+a1_3], cd likewise
        (local.set $ab (f32x4.add
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a0) (local.get $a1))
          (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a0) (local.get $a1))))
        (local.set $cd (f32x4.add
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a2) (local.get $a3))
          (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a2) (local.get $a3))))
        ;; lanes 0, 2 of ab and cd plus lanes 1, 3
        (local.set $out (f32x4.mul
          (f32x4.add
            (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $ab) (local.get $cd))
            (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $ab) (local.get $cd)))
          (f32x4.splat (local.get $scale))))
        (v128.store (i32.add (local.get $s) (i32.shl (local.get $j) (i32.const 2))) (local.get $out))
        (local.set $max (f32x4.max (local.get $max) (local.get $out)))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $keys4)))
    ;; The last n mod 4 keys, one at a time.
    (block $done
      (loop $keys1
        (br_if $done (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $k0 (i32.add (local.get $keys) (i32.mul (local.get $j) (local.get $row))))
        (local.set $a0 (v128.const i32x4 0 0 0 0))
        (local.set $c (i32.const 0))
        (loop $chunks1
          (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (v128.load (i32.add (local.get $q) (local.get $c))) (v128.load (i32.add (local.get $k0) (local.get $c))))))
          (local.set $c (i32.add (local.get $c) (i32.const 16)))
          (br_if $chunks1 (i32.lt_u (local.get $c) (local.get $row))))
        ;; $sumLanes written out (V8 does not inline; the callee's own budget)
        (local.set $sum (f32.add
          (f32.add (f32x4.extract_lane 0 (local.get $a0)) (f32x4.extract_lane 1 (local.get $a0)))
          (f32.add (f32x4.extract_lane 2 (local.get $a0)) (f32x4.extract_lane 3 (local.get $a0)))))
        (local.set $out (f32x4.splat (f32.mul (local.get $sum) (local.get $scale))))
        (f32.store (i32.add (local.get $s) (i32.shl (local.get $j) (i32.const 2))) (f32x4.extract_lane 0 (local.get $out)))
        (local.set $max (f32x4.max (local.get $max) (local.get $out)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $keys1)))
    ;; $maxLanes written out (V8 does not inline; the callee's own budget)
    (f32.max
      (f32.max (f32x4.extract_lane 0 (local.get $max)) (f32x4.extract_lane 1 (local.get $max)))
      (f32.max (f32x4.extract_lane 2 (local.get $max)) (f32x4.extract_lane 3 (local.get $max)))))

  ;; exp(x) lane-wise for x <= 0, the Cephes single-precision method: split
  ;; x = n ln2 + r with |r| <= ln2/2, a degree-6 polynomial for exp(r), and
  ;; 2^n built in the exponent bits. Relative error about 1e-7. x is clamped
  ;; to [-87.3, 88]: below, where exp leaves the normal floats, it gives about
  ;; 1e-38 instead of 0; above, 1.7e38 instead of overflowing. The clamp is
  ;; pmax then pmin (one instruction each; min and max's NaN and signed-zero
  ;; rules cost V8 a chain of them): the same lanes for every x, a NaN
  ;; staying NaN (exps of 128 scores 0.21 -> 0.14 µs, hot).
  (func $exp (param $x v128) (result v128)
    (local $n v128) (local $r v128) (local $p v128)
    (local.set $x (f32x4.pmin (f32x4.pmax (local.get $x) (f32x4.splat (f32.const -87.3))) (f32x4.splat (f32.const 88))))
    (local.set $n (f32x4.nearest (f32x4.mul (local.get $x) (f32x4.splat (f32.const 1.44269504088896341)))))
    ;; r = x - n ln2, with ln2 in two parts so that n * (high part) is exact
    (local.set $r (f32x4.sub (local.get $x) (f32x4.mul (local.get $n) (f32x4.splat (f32.const 0.693359375)))))
    (local.set $r (f32x4.sub (local.get $r) (f32x4.mul (local.get $n) (f32x4.splat (f32.const -2.12194440e-4)))))
    (local.set $p (f32x4.splat (f32.const 1.9875691500e-4)))
    (local.set $p (f32x4.add (f32x4.splat (f32.const 1.3981999507e-3)) (f32x4.mul (local.get $p) (local.get $r))))
    (local.set $p (f32x4.add (f32x4.splat (f32.const 8.3334519073e-3)) (f32x4.mul (local.get $p) (local.get $r))))
    (local.set $p (f32x4.add (f32x4.splat (f32.const 4.1665795894e-2)) (f32x4.mul (local.get $p) (local.get $r))))
    (local.set $p (f32x4.add (f32x4.splat (f32.const 1.6666665459e-1)) (f32x4.mul (local.get $p) (local.get $r))))
    (local.set $p (f32x4.add (f32x4.splat (f32.const 5.0000001201e-1)) (f32x4.mul (local.get $p) (local.get $r))))
    ;; exp(r) = 1 + r + r^2 p
    (local.set $p (f32x4.add
      (f32x4.add (f32x4.splat (f32.const 1)) (local.get $r))
      (f32x4.mul (f32x4.mul (local.get $r) (local.get $r)) (local.get $p))))
    ;; times 2^n: (n + 127) << 23 is the float 2^n
    (f32x4.mul (local.get $p)
      (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n)) (i32x4.splat (i32.const 127))) (i32.const 23))))

;; sum_j exp(s[j] - max) for j < n, added in float64 (a vocabulary row has
  ;; tens of thousands of terms); with `store`, s[j] = exp(s[j] - max) too.
  (func $exps (export "exps") (param $s i32) (param $n i32) (param $max f32) (param $store i32) (result f64)
    (local $at i32) (local $end i32) (local $m v128) (local $e v128)
    (local $low v128) (local $high v128) (local $tail f64)
    (local $x0 v128) (local $n0 v128) (local $r0 v128) (local $p0 v128) (local $e0 v128)
    (local $x1 v128) (local $n1 v128) (local $r1 v128) (local $p1 v128) (local $e1 v128)
    (local.set $m (f32x4.splat (local.get $max)))
    (local.set $at (local.get $s))
    ;; Eight at a time, $exp written out twice: two independent chains (a
    ;; call per four left each exp waiting on the last: 0.43 µs for 128),
    ;; each lane's steps and the sums' order those of four at a time.
    (local.set $end (i32.add (local.get $s) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 2))))
    (block $done8
      (loop $eight
        (br_if $done8 (i32.ge_u (local.get $at) (local.get $end)))
        (local.set $x0 (f32x4.sub (v128.load (local.get $at)) (local.get $m)))
        (local.set $x1 (f32x4.sub (v128.load offset=16 (local.get $at)) (local.get $m)))
        (local.set $x0 (f32x4.pmin (f32x4.pmax (local.get $x0) (f32x4.splat (f32.const -87.3))) (f32x4.splat (f32.const 88))))
        (local.set $n0 (f32x4.nearest (f32x4.mul (local.get $x0) (f32x4.splat (f32.const 1.44269504088896341)))))
        (local.set $r0 (f32x4.sub (local.get $x0) (f32x4.mul (local.get $n0) (f32x4.splat (f32.const 0.693359375)))))
        (local.set $r0 (f32x4.sub (local.get $r0) (f32x4.mul (local.get $n0) (f32x4.splat (f32.const -2.12194440e-4)))))
        (local.set $p0 (f32x4.splat (f32.const 1.9875691500e-4)))
        (local.set $p0 (f32x4.add (f32x4.splat (f32.const 1.3981999507e-3)) (f32x4.mul (local.get $p0) (local.get $r0))))
        (local.set $p0 (f32x4.add (f32x4.splat (f32.const 8.3334519073e-3)) (f32x4.mul (local.get $p0) (local.get $r0))))
        (local.set $p0 (f32x4.add (f32x4.splat (f32.const 4.1665795894e-2)) (f32x4.mul (local.get $p0) (local.get $r0))))
        (local.set $p0 (f32x4.add (f32x4.splat (f32.const 1.6666665459e-1)) (f32x4.mul (local.get $p0) (local.get $r0))))
        (local.set $p0 (f32x4.add (f32x4.splat (f32.const 5.0000001201e-1)) (f32x4.mul (local.get $p0) (local.get $r0))))
        (local.set $p0 (f32x4.add
          (f32x4.add (f32x4.splat (f32.const 1)) (local.get $r0))
          (f32x4.mul (f32x4.mul (local.get $r0) (local.get $r0)) (local.get $p0))))
        (local.set $e0 (f32x4.mul (local.get $p0)
          (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n0)) (i32x4.splat (i32.const 127))) (i32.const 23))))
        (local.set $x1 (f32x4.pmin (f32x4.pmax (local.get $x1) (f32x4.splat (f32.const -87.3))) (f32x4.splat (f32.const 88))))
        (local.set $n1 (f32x4.nearest (f32x4.mul (local.get $x1) (f32x4.splat (f32.const 1.44269504088896341)))))
        (local.set $r1 (f32x4.sub (local.get $x1) (f32x4.mul (local.get $n1) (f32x4.splat (f32.const 0.693359375)))))
        (local.set $r1 (f32x4.sub (local.get $r1) (f32x4.mul (local.get $n1) (f32x4.splat (f32.const -2.12194440e-4)))))
        (local.set $p1 (f32x4.splat (f32.const 1.9875691500e-4)))
        (local.set $p1 (f32x4.add (f32x4.splat (f32.const 1.3981999507e-3)) (f32x4.mul (local.get $p1) (local.get $r1))))
        (local.set $p1 (f32x4.add (f32x4.splat (f32.const 8.3334519073e-3)) (f32x4.mul (local.get $p1) (local.get $r1))))
        (local.set $p1 (f32x4.add (f32x4.splat (f32.const 4.1665795894e-2)) (f32x4.mul (local.get $p1) (local.get $r1))))
        (local.set $p1 (f32x4.add (f32x4.splat (f32.const 1.6666665459e-1)) (f32x4.mul (local.get $p1) (local.get $r1))))
        (local.set $p1 (f32x4.add (f32x4.splat (f32.const 5.0000001201e-1)) (f32x4.mul (local.get $p1) (local.get $r1))))
        (local.set $p1 (f32x4.add
          (f32x4.add (f32x4.splat (f32.const 1)) (local.get $r1))
          (f32x4.mul (f32x4.mul (local.get $r1) (local.get $r1)) (local.get $p1))))
        (local.set $e1 (f32x4.mul (local.get $p1)
          (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n1)) (i32x4.splat (i32.const 127))) (i32.const 23))))
        (if (local.get $store) (then
          (v128.store (local.get $at) (local.get $e0))
          (v128.store offset=16 (local.get $at) (local.get $e1))))
        (local.set $low (f64x2.add (local.get $low) (f64x2.promote_low_f32x4 (local.get $e0))))
        (local.set $high (f64x2.add (local.get $high) (f64x2.promote_low_f32x4
          (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $e0) (local.get $e0)))))
        (local.set $low (f64x2.add (local.get $low) (f64x2.promote_low_f32x4 (local.get $e1))))
        (local.set $high (f64x2.add (local.get $high) (f64x2.promote_low_f32x4
          (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $e1) (local.get $e1)))))
        (local.set $at (i32.add (local.get $at) (i32.const 32)))
        (br $eight)))
    (local.set $end (i32.add (local.get $s) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done4
      (loop $four
        (br_if $done4 (i32.ge_u (local.get $at) (local.get $end)))
        ;; $exp written out (V8 does not inline; the callee's own budget: as a
        ;; function it reached TurboFan at token 66 of a fresh decode)
        (local.set $x0 (f32x4.pmin (f32x4.pmax (f32x4.sub (v128.load (local.get $at)) (local.get $m)) (f32x4.splat (f32.const -87.3))) (f32x4.splat (f32.const 88))))
        (local.set $n0 (f32x4.nearest (f32x4.mul (local.get $x0) (f32x4.splat (f32.const 1.44269504088896341)))))
        (local.set $r0 (f32x4.sub (local.get $x0) (f32x4.mul (local.get $n0) (f32x4.splat (f32.const 0.693359375)))))
        (local.set $r0 (f32x4.sub (local.get $r0) (f32x4.mul (local.get $n0) (f32x4.splat (f32.const -2.12194440e-4)))))
        (local.set $p0 (f32x4.splat (f32.const 1.9875691500e-4)))
        (local.set $p0 (f32x4.add (f32x4.splat (f32.const 1.3981999507e-3)) (f32x4.mul (local.get $p0) (local.get $r0))))
        (local.set $p0 (f32x4.add (f32x4.splat (f32.const 8.3334519073e-3)) (f32x4.mul (local.get $p0) (local.get $r0))))
        (local.set $p0 (f32x4.add (f32x4.splat (f32.const 4.1665795894e-2)) (f32x4.mul (local.get $p0) (local.get $r0))))
        (local.set $p0 (f32x4.add (f32x4.splat (f32.const 1.6666665459e-1)) (f32x4.mul (local.get $p0) (local.get $r0))))
        (local.set $p0 (f32x4.add (f32x4.splat (f32.const 5.0000001201e-1)) (f32x4.mul (local.get $p0) (local.get $r0))))
        (local.set $p0 (f32x4.add
          (f32x4.add (f32x4.splat (f32.const 1)) (local.get $r0))
          (f32x4.mul (f32x4.mul (local.get $r0) (local.get $r0)) (local.get $p0))))
        (local.set $e (f32x4.mul (local.get $p0)
          (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n0)) (i32x4.splat (i32.const 127))) (i32.const 23))))
        (if (local.get $store) (then (v128.store (local.get $at) (local.get $e))))
        ;; lanes 0, 1 and lanes 2, 3 widened to f64x2
        (local.set $low (f64x2.add (local.get $low) (f64x2.promote_low_f32x4 (local.get $e))))
        (local.set $high (f64x2.add (local.get $high) (f64x2.promote_low_f32x4
          (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $e) (local.get $e)))))
        (local.set $at (i32.add (local.get $at) (i32.const 16)))
        (br $four)))
    (local.set $end (i32.add (local.get $s) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $one
        (br_if $done (i32.ge_u (local.get $at) (local.get $end)))
        ;; $exp written out again (V8 does not inline; the callee's own budget)
        (local.set $x0 (f32x4.pmin (f32x4.pmax (f32x4.splat (f32.sub (f32.load (local.get $at)) (local.get $max))) (f32x4.splat (f32.const -87.3))) (f32x4.splat (f32.const 88))))
        (local.set $n0 (f32x4.nearest (f32x4.mul (local.get $x0) (f32x4.splat (f32.const 1.44269504088896341)))))
        (local.set $r0 (f32x4.sub (local.get $x0) (f32x4.mul (local.get $n0) (f32x4.splat (f32.const 0.693359375)))))
        (local.set $r0 (f32x4.sub (local.get $r0) (f32x4.mul (local.get $n0) (f32x4.splat (f32.const -2.12194440e-4)))))
        (local.set $p0 (f32x4.splat (f32.const 1.9875691500e-4)))
        (local.set $p0 (f32x4.add (f32x4.splat (f32.const 1.3981999507e-3)) (f32x4.mul (local.get $p0) (local.get $r0))))
        (local.set $p0 (f32x4.add (f32x4.splat (f32.const 8.3334519073e-3)) (f32x4.mul (local.get $p0) (local.get $r0))))
        (local.set $p0 (f32x4.add (f32x4.splat (f32.const 4.1665795894e-2)) (f32x4.mul (local.get $p0) (local.get $r0))))
        (local.set $p0 (f32x4.add (f32x4.splat (f32.const 1.6666665459e-1)) (f32x4.mul (local.get $p0) (local.get $r0))))
        (local.set $p0 (f32x4.add (f32x4.splat (f32.const 5.0000001201e-1)) (f32x4.mul (local.get $p0) (local.get $r0))))
        (local.set $p0 (f32x4.add
          (f32x4.add (f32x4.splat (f32.const 1)) (local.get $r0))
          (f32x4.mul (f32x4.mul (local.get $r0) (local.get $r0)) (local.get $p0))))
        (local.set $e (f32x4.mul (local.get $p0)
          (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n0)) (i32x4.splat (i32.const 127))) (i32.const 23))))
        (if (local.get $store) (then (f32.store (local.get $at) (f32x4.extract_lane 0 (local.get $e)))))
        (local.set $tail (f64.add (local.get $tail) (f64.promote_f32 (f32x4.extract_lane 0 (local.get $e)))))
        (local.set $at (i32.add (local.get $at) (i32.const 4)))
        (br $one)))
    (local.set $low (f64x2.add (local.get $low) (local.get $high)))
    (f64.add (local.get $tail) (f64.add (f64x2.extract_lane 0 (local.get $low)) (f64x2.extract_lane 1 (local.get $low)))))

  ;; The largest of x[j], j < n (-inf when n = 0; NaNs are not looked for).
  ;; Sixteen floats a step into four independent maxima, with pmax (one
  ;; instruction; max's NaN rules cost a chain of them): a row of logits is
  ;; read as fast as memory gives it.
  (func $maxOf (export "maxOf") (param $x i32) (param $n i32) (result f32)
    (local $at i32) (local $end i32) (local $m0 v128) (local $m1 v128) (local $m2 v128) (local $m3 v128) (local $tail f32)
    (local.set $m0 (f32x4.splat (f32.const -inf)))
    (local.set $m1 (local.get $m0))
    (local.set $m2 (local.get $m0))
    (local.set $m3 (local.get $m0))
    (local.set $tail (f32.const -inf))
    (local.set $at (local.get $x))
    (local.set $end (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -16)) (i32.const 2))))
    (block $done16
      (loop $sixteen
        (br_if $done16 (i32.ge_u (local.get $at) (local.get $end)))
        (local.set $m0 (f32x4.pmax (local.get $m0) (v128.load offset=0 (local.get $at))))
        (local.set $m1 (f32x4.pmax (local.get $m1) (v128.load offset=16 (local.get $at))))
        (local.set $m2 (f32x4.pmax (local.get $m2) (v128.load offset=32 (local.get $at))))
        (local.set $m3 (f32x4.pmax (local.get $m3) (v128.load offset=48 (local.get $at))))
        (local.set $at (i32.add (local.get $at) (i32.const 64)))
        (br $sixteen)))
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $one
        (br_if $done (i32.ge_u (local.get $at) (local.get $end)))
        (local.set $tail (f32.max (local.get $tail) (f32.load (local.get $at))))
        (local.set $at (i32.add (local.get $at) (i32.const 4)))
        (br $one)))
    (f32.max (local.get $tail) (call $maxLanes
      (f32x4.pmax (f32x4.pmax (local.get $m0) (local.get $m1)) (f32x4.pmax (local.get $m2) (local.get $m3))))))

  ;; The index of the first largest of x[j], j < n (n >= 1), or -1 when any
  ;; x[j] is NaN or infinite: greedy decoding's pick and check of a row of
  ;; logits in one call (kernels/logits_argmax.ts), what src/sample/sampler.ts
  ;; argmax and src/finite.ts firstNonFinite find. First the max (pmax, eight
  ;; floats a step) and the sum of x[j] * 0 (0 for every finite x[j], NaN
  ;; otherwise), then the first index holding the max, four floats a step.
  ;; (-0 and 0 compare equal, as they do for argmax's >.)
  (func $argmaxFinite (export "argmaxFinite") (param $x i32) (param $n i32) (result i32)
    (local $at i32) (local $end i32) (local $m0 v128) (local $m1 v128) (local $z v128)
    (local $v0 v128) (local $v1 v128) (local $max f32) (local $zero f32) (local $v f32) (local $mv v128)
    (local.set $m0 (f32x4.splat (f32.const -inf)))
    (local.set $m1 (local.get $m0))
    (local.set $z (v128.const f32x4 0 0 0 0))
    (local.set $max (f32.const -inf))
    (local.set $zero (f32.const 0))
    (local.set $at (local.get $x))
    (local.set $end (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 2))))
    (block $done8
      (loop $eight
        (br_if $done8 (i32.ge_u (local.get $at) (local.get $end)))
        (local.set $v0 (v128.load offset=0 (local.get $at)))
        (local.set $v1 (v128.load offset=16 (local.get $at)))
        (local.set $m0 (f32x4.pmax (local.get $m0) (local.get $v0)))
        (local.set $m1 (f32x4.pmax (local.get $m1) (local.get $v1)))
        (local.set $z (f32x4.add (local.get $z) (f32x4.add
          (f32x4.mul (local.get $v0) (v128.const f32x4 0 0 0 0))
          (f32x4.mul (local.get $v1) (v128.const f32x4 0 0 0 0)))))
        (local.set $at (i32.add (local.get $at) (i32.const 32)))
        (br $eight)))
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $one
        (br_if $done (i32.ge_u (local.get $at) (local.get $end)))
        (local.set $v (f32.load (local.get $at)))
        (if (f32.gt (local.get $v) (local.get $max)) (then (local.set $max (local.get $v))))
        (local.set $zero (f32.add (local.get $zero) (f32.mul (local.get $v) (f32.const 0))))
        (local.set $at (i32.add (local.get $at) (i32.const 4)))
        (br $one)))
    (if (f32.ne (f32.add (local.get $zero) (call $sumLanes (local.get $z))) (f32.const 0)) (then (return (i32.const -1))))
    (local.set $max (f32.max (local.get $max) (call $maxLanes (f32x4.pmax (local.get $m0) (local.get $m1)))))
    ;; the first index holding it (there is one)
    (local.set $mv (f32x4.splat (local.get $max)))
    (local.set $at (local.get $x))
    (local.set $end (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $found4
      (loop $four
        (br_if $found4 (i32.ge_u (local.get $at) (local.get $end)))
        (br_if $found4 (v128.any_true (f32x4.eq (v128.load (local.get $at)) (local.get $mv))))
        (local.set $at (i32.add (local.get $at) (i32.const 16)))
        (br $four)))
    (loop $scan
      (if (f32.eq (f32.load (local.get $at)) (local.get $max))
        (then (return (i32.shr_u (i32.sub (local.get $at) (local.get $x)) (i32.const 2)))))
      (local.set $at (i32.add (local.get $at) (i32.const 4)))
      (br $scan))
    (unreachable))

  ;; A claim's share of greedy decoding's pick, in a pool job that also
  ;; picks (kernels/pool_ops.ts PICK_RECORD_BYTES): argmaxFinite of rows [row0, row1)
  ;; of a one-token product's result x, stored as two int32 at records + 8 *
  ;; (row0 / group): row1, and the first largest's row (-1 when any of the
  ;; rows is NaN or infinite). row1 > row0.
  (func (export "pickRows") (param $x i32) (param $row0 i32) (param $row1 i32) (param $records i32) (param $group i32)
    (local $i i32) (local $record i32)
    (local.set $i (call $argmaxFinite
      (i32.add (local.get $x) (i32.shl (local.get $row0) (i32.const 2)))
      (i32.sub (local.get $row1) (local.get $row0))))
    (local.set $record (i32.add (local.get $records)
      (i32.shl (i32.div_u (local.get $row0) (local.get $group)) (i32.const 3))))
    (i32.store (local.get $record) (local.get $row1))
    (i32.store offset=4 (local.get $record)
      (select (i32.const -1) (i32.add (local.get $row0) (local.get $i)) (i32.lt_s (local.get $i) (i32.const 0)))))

  ;; Greedy decoding's pick from a picking job's records (pickRows'), its
  ;; result at x ([rows]): the claims followed in row order from row 0 (each
  ;; record names the row where the next claim starts), the first largest of
  ;; their picks: its row; -1 when a claim found a NaN or an infinity; -2 when
  ;; a record is not a claim's (a row not on a group's start, an end not past
  ;; its row or past rows, a pick outside its rows). kernels/split_products.ts
  ;; pickedArgmax (its reference: products.ref.ts pickOfClaimsReference).
  (func (export "pickOfClaims") (param $x i32) (param $rows i32) (param $records i32) (param $group i32) (result i32)
    (local $row i32) (local $record i32) (local $end i32) (local $at i32) (local $best i32) (local $largest f32) (local $v f32)
    (local.set $best (i32.const -1))
    (local.set $largest (f32.const -inf))
    (block $done
      (loop $claim
        (br_if $done (i32.ge_s (local.get $row) (local.get $rows)))
        (if (i32.rem_u (local.get $row) (local.get $group)) (then (return (i32.const -2))))
        (local.set $record (i32.add (local.get $records)
          (i32.shl (i32.div_u (local.get $row) (local.get $group)) (i32.const 3))))
        (local.set $end (i32.load (local.get $record)))
        (local.set $at (i32.load offset=4 (local.get $record)))
        (if (i32.lt_s (local.get $at) (i32.const 0)) (then (return (i32.const -1))))
        (if (i32.eqz (i32.and
              (i32.and (i32.gt_s (local.get $end) (local.get $row)) (i32.le_s (local.get $end) (local.get $rows)))
              (i32.and (i32.ge_s (local.get $at) (local.get $row)) (i32.lt_s (local.get $at) (local.get $end)))))
          (then (return (i32.const -2))))
        (local.set $v (f32.load (i32.add (local.get $x) (i32.shl (local.get $at) (i32.const 2)))))
        (if (f32.gt (local.get $v) (local.get $largest))
          (then
            (local.set $best (local.get $at))
            (local.set $largest (local.get $v))))
        (local.set $row (local.get $end))
        (br $claim)))
    (local.get $best))

  ;; rows runs of `bytes` bytes (a multiple of 16) from src, srcStride
  ;; bytes apart, to dst, dstStride bytes apart, sixteen bytes a step, front
  ;; to back (the runs must not overlap): a decode step's new entry of each kv
  ;; head into the cache's storage (kernels/cache_write.ts), where a
  ;; JavaScript loop took a float a step (110M: 768 floats, 1.0 µs).
  (func (export "copyRows") (param $src i32) (param $srcStride i32) (param $dst i32) (param $dstStride i32) (param $rows i32) (param $bytes i32)
    (local $r i32) (local $c i32)
    (block $done
      (loop $row
        (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $c (i32.const 0))
        (block $copied
          (loop $chunk
            (br_if $copied (i32.ge_u (local.get $c) (local.get $bytes)))
            (v128.store (i32.add (local.get $dst) (local.get $c)) (v128.load (i32.add (local.get $src) (local.get $c))))
            (local.set $c (i32.add (local.get $c) (i32.const 16)))
            (br $chunk)))
        (local.set $src (i32.add (local.get $src) (local.get $srcStride)))
        (local.set $dst (i32.add (local.get $dst) (local.get $dstStride)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $row))))

  ;; SwiGLU: out[r, i] = silu(g) * u with g = x[r, i], u = x[r, hidden + i],
  ;; silu(g) = g / (1 + exp(-g)); x is [rows, 2 * hidden], out [rows, hidden].
  ;; $exp written out in the loop, its steps unchanged (V8 does not inline
  ;; the call: a row of 768, hot, 1.12 µs with the call, 0.86 without; every
  ;; thread runs it whole in a decode program, once a layer).
  (func $swiglu (export "swiglu") (param $x i32) (param $rows i32) (param $hidden i32) (param $out i32)
    (local $half i32) (local $end i32) (local $rowEnd i32) (local $g v128)
    (local $e v128) (local $n v128) (local $r v128) (local $p v128)
    (local.set $half (i32.shl (local.get $hidden) (i32.const 2))) ;; bytes of one half-row
    (local.set $end (i32.add (local.get $out) (i32.mul (local.get $rows) (local.get $half))))
    (block $rowsDone
      (loop $row
        (br_if $rowsDone (i32.ge_u (local.get $out) (local.get $end)))
        (local.set $rowEnd (i32.add (local.get $out) (local.get $half)))
        (block $columnsDone
          (loop $columns
            (br_if $columnsDone (i32.ge_u (local.get $out) (local.get $rowEnd)))
            (local.set $g (v128.load (local.get $x)))
            ;; $e = exp(-g), $exp's steps
            (local.set $e (f32x4.pmin (f32x4.pmax (f32x4.neg (local.get $g)) (f32x4.splat (f32.const -87.3))) (f32x4.splat (f32.const 88))))
            (local.set $n (f32x4.nearest (f32x4.mul (local.get $e) (f32x4.splat (f32.const 1.44269504088896341)))))
            (local.set $r (f32x4.sub (local.get $e) (f32x4.mul (local.get $n) (f32x4.splat (f32.const 0.693359375)))))
            (local.set $r (f32x4.sub (local.get $r) (f32x4.mul (local.get $n) (f32x4.splat (f32.const -2.12194440e-4)))))
            (local.set $p (f32x4.splat (f32.const 1.9875691500e-4)))
            (local.set $p (f32x4.add (f32x4.splat (f32.const 1.3981999507e-3)) (f32x4.mul (local.get $p) (local.get $r))))
            (local.set $p (f32x4.add (f32x4.splat (f32.const 8.3334519073e-3)) (f32x4.mul (local.get $p) (local.get $r))))
            (local.set $p (f32x4.add (f32x4.splat (f32.const 4.1665795894e-2)) (f32x4.mul (local.get $p) (local.get $r))))
            (local.set $p (f32x4.add (f32x4.splat (f32.const 1.6666665459e-1)) (f32x4.mul (local.get $p) (local.get $r))))
            (local.set $p (f32x4.add (f32x4.splat (f32.const 5.0000001201e-1)) (f32x4.mul (local.get $p) (local.get $r))))
            (local.set $p (f32x4.add
              (f32x4.add (f32x4.splat (f32.const 1)) (local.get $r))
              (f32x4.mul (f32x4.mul (local.get $r) (local.get $r)) (local.get $p))))
            (local.set $e (f32x4.mul (local.get $p)
              (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n)) (i32x4.splat (i32.const 127))) (i32.const 23))))
            (v128.store (local.get $out) (f32x4.div
              (f32x4.mul (local.get $g) (v128.load (i32.add (local.get $x) (local.get $half))))
              (f32x4.add (f32x4.splat (f32.const 1)) (local.get $e))))
            (local.set $x (i32.add (local.get $x) (i32.const 16)))
            (local.set $out (i32.add (local.get $out) (i32.const 16)))
            (br $columns)))
        (local.set $x (i32.add (local.get $x) (local.get $half))) ;; past the up half
        (br $row))))

  ;; out[c] = (accumulate ? out[c] : 0) + sum_j weight * p[j] * value_j[c]
  ;; for c < dim, value_j at values + j * dim floats. Columns go 64 at a time,
  ;; in sixteen registers, then 48 in twelve, sixteen in four, then four at a
  ;; time; each column's terms are added in the same order (j ascending) in
  ;; all of them, so the sums do not depend on the blocking. (Sixteen at a
  ;; time read a value row of 64 or 48 floats in four or three passes, each
  ;; one cache line a row, with weight * p[j] recomputed in each. At the
  ;; 110M shape (headDim 64), whose cache a decode step finds evicted by the
  ;; weights, one pass measured 12 layers x 12 heads x 128 entries 0.68 ->
  ;; 0.60 ms cold, 0.21 -> 0.19 hot (32 at a time, two passes: 0.62 cold);
  ;; at 15M (headDim 48, 6 x 6 x 256 entries, hot) 0.054 -> 0.043 ms.)
  (func $weightedSum (export "weightedSum")
    (param $p i32) (param $values i32) (param $n i32) (param $dim i32) (param $weight f32)
    (param $out i32) (param $accumulate i32)
    (local $row i32) (local $c i32) (local $j i32) (local $v i32) (local $pj v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $a4 v128) (local $a5 v128) (local $a6 v128) (local $a7 v128)
    (local $a8 v128) (local $a9 v128) (local $a10 v128) (local $a11 v128)
    (local $a12 v128) (local $a13 v128) (local $a14 v128) (local $a15 v128)
    (local.set $row (i32.shl (local.get $dim) (i32.const 2)))
    (block $done64
      (loop $columns64
        (br_if $done64 (i32.gt_u (i32.add (local.get $c) (i32.const 256)) (local.get $row)))
        (if (local.get $accumulate)
          (then
            (local.set $a0 (v128.load offset=0 (i32.add (local.get $out) (local.get $c))))
            (local.set $a1 (v128.load offset=16 (i32.add (local.get $out) (local.get $c))))
            (local.set $a2 (v128.load offset=32 (i32.add (local.get $out) (local.get $c))))
            (local.set $a3 (v128.load offset=48 (i32.add (local.get $out) (local.get $c))))
            (local.set $a4 (v128.load offset=64 (i32.add (local.get $out) (local.get $c))))
            (local.set $a5 (v128.load offset=80 (i32.add (local.get $out) (local.get $c))))
            (local.set $a6 (v128.load offset=96 (i32.add (local.get $out) (local.get $c))))
            (local.set $a7 (v128.load offset=112 (i32.add (local.get $out) (local.get $c))))
            (local.set $a8 (v128.load offset=128 (i32.add (local.get $out) (local.get $c))))
            (local.set $a9 (v128.load offset=144 (i32.add (local.get $out) (local.get $c))))
            (local.set $a10 (v128.load offset=160 (i32.add (local.get $out) (local.get $c))))
            (local.set $a11 (v128.load offset=176 (i32.add (local.get $out) (local.get $c))))
            (local.set $a12 (v128.load offset=192 (i32.add (local.get $out) (local.get $c))))
            (local.set $a13 (v128.load offset=208 (i32.add (local.get $out) (local.get $c))))
            (local.set $a14 (v128.load offset=224 (i32.add (local.get $out) (local.get $c))))
            (local.set $a15 (v128.load offset=240 (i32.add (local.get $out) (local.get $c)))))
          (else
            (local.set $a0 (v128.const i32x4 0 0 0 0))
            (local.set $a1 (v128.const i32x4 0 0 0 0))
            (local.set $a2 (v128.const i32x4 0 0 0 0))
            (local.set $a3 (v128.const i32x4 0 0 0 0))
            (local.set $a4 (v128.const i32x4 0 0 0 0))
            (local.set $a5 (v128.const i32x4 0 0 0 0))
            (local.set $a6 (v128.const i32x4 0 0 0 0))
            (local.set $a7 (v128.const i32x4 0 0 0 0))
            (local.set $a8 (v128.const i32x4 0 0 0 0))
            (local.set $a9 (v128.const i32x4 0 0 0 0))
            (local.set $a10 (v128.const i32x4 0 0 0 0))
            (local.set $a11 (v128.const i32x4 0 0 0 0))
            (local.set $a12 (v128.const i32x4 0 0 0 0))
            (local.set $a13 (v128.const i32x4 0 0 0 0))
            (local.set $a14 (v128.const i32x4 0 0 0 0))
            (local.set $a15 (v128.const i32x4 0 0 0 0))))
        (local.set $v (i32.add (local.get $values) (local.get $c)))
        (local.set $j (i32.const 0))
        (block $rowsDone
          (loop $rows
            (br_if $rowsDone (i32.ge_u (local.get $j) (local.get $n)))
            (local.set $pj (f32x4.splat (f32.mul (local.get $weight)
              (f32.load (i32.add (local.get $p) (i32.shl (local.get $j) (i32.const 2)))))))
            (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $pj) (v128.load offset=0 (local.get $v)))))
            (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $pj) (v128.load offset=16 (local.get $v)))))
            (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $pj) (v128.load offset=32 (local.get $v)))))
            (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $pj) (v128.load offset=48 (local.get $v)))))
            (local.set $a4 (f32x4.add (local.get $a4) (f32x4.mul (local.get $pj) (v128.load offset=64 (local.get $v)))))
            (local.set $a5 (f32x4.add (local.get $a5) (f32x4.mul (local.get $pj) (v128.load offset=80 (local.get $v)))))
            (local.set $a6 (f32x4.add (local.get $a6) (f32x4.mul (local.get $pj) (v128.load offset=96 (local.get $v)))))
            (local.set $a7 (f32x4.add (local.get $a7) (f32x4.mul (local.get $pj) (v128.load offset=112 (local.get $v)))))
            (local.set $a8 (f32x4.add (local.get $a8) (f32x4.mul (local.get $pj) (v128.load offset=128 (local.get $v)))))
            (local.set $a9 (f32x4.add (local.get $a9) (f32x4.mul (local.get $pj) (v128.load offset=144 (local.get $v)))))
            (local.set $a10 (f32x4.add (local.get $a10) (f32x4.mul (local.get $pj) (v128.load offset=160 (local.get $v)))))
            (local.set $a11 (f32x4.add (local.get $a11) (f32x4.mul (local.get $pj) (v128.load offset=176 (local.get $v)))))
            (local.set $a12 (f32x4.add (local.get $a12) (f32x4.mul (local.get $pj) (v128.load offset=192 (local.get $v)))))
            (local.set $a13 (f32x4.add (local.get $a13) (f32x4.mul (local.get $pj) (v128.load offset=208 (local.get $v)))))
            (local.set $a14 (f32x4.add (local.get $a14) (f32x4.mul (local.get $pj) (v128.load offset=224 (local.get $v)))))
            (local.set $a15 (f32x4.add (local.get $a15) (f32x4.mul (local.get $pj) (v128.load offset=240 (local.get $v)))))
            (local.set $v (i32.add (local.get $v) (local.get $row)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $rows)))
        (v128.store offset=0 (i32.add (local.get $out) (local.get $c)) (local.get $a0))
        (v128.store offset=16 (i32.add (local.get $out) (local.get $c)) (local.get $a1))
        (v128.store offset=32 (i32.add (local.get $out) (local.get $c)) (local.get $a2))
        (v128.store offset=48 (i32.add (local.get $out) (local.get $c)) (local.get $a3))
        (v128.store offset=64 (i32.add (local.get $out) (local.get $c)) (local.get $a4))
        (v128.store offset=80 (i32.add (local.get $out) (local.get $c)) (local.get $a5))
        (v128.store offset=96 (i32.add (local.get $out) (local.get $c)) (local.get $a6))
        (v128.store offset=112 (i32.add (local.get $out) (local.get $c)) (local.get $a7))
        (v128.store offset=128 (i32.add (local.get $out) (local.get $c)) (local.get $a8))
        (v128.store offset=144 (i32.add (local.get $out) (local.get $c)) (local.get $a9))
        (v128.store offset=160 (i32.add (local.get $out) (local.get $c)) (local.get $a10))
        (v128.store offset=176 (i32.add (local.get $out) (local.get $c)) (local.get $a11))
        (v128.store offset=192 (i32.add (local.get $out) (local.get $c)) (local.get $a12))
        (v128.store offset=208 (i32.add (local.get $out) (local.get $c)) (local.get $a13))
        (v128.store offset=224 (i32.add (local.get $out) (local.get $c)) (local.get $a14))
        (v128.store offset=240 (i32.add (local.get $out) (local.get $c)) (local.get $a15))
        (local.set $c (i32.add (local.get $c) (i32.const 256)))
        (br $columns64)))
    (block $done48
      (loop $columns48
        (br_if $done48 (i32.gt_u (i32.add (local.get $c) (i32.const 192)) (local.get $row)))
        (if (local.get $accumulate)
          (then
            (local.set $a0 (v128.load offset=0 (i32.add (local.get $out) (local.get $c))))
            (local.set $a1 (v128.load offset=16 (i32.add (local.get $out) (local.get $c))))
            (local.set $a2 (v128.load offset=32 (i32.add (local.get $out) (local.get $c))))
            (local.set $a3 (v128.load offset=48 (i32.add (local.get $out) (local.get $c))))
            (local.set $a4 (v128.load offset=64 (i32.add (local.get $out) (local.get $c))))
            (local.set $a5 (v128.load offset=80 (i32.add (local.get $out) (local.get $c))))
            (local.set $a6 (v128.load offset=96 (i32.add (local.get $out) (local.get $c))))
            (local.set $a7 (v128.load offset=112 (i32.add (local.get $out) (local.get $c))))
            (local.set $a8 (v128.load offset=128 (i32.add (local.get $out) (local.get $c))))
            (local.set $a9 (v128.load offset=144 (i32.add (local.get $out) (local.get $c))))
            (local.set $a10 (v128.load offset=160 (i32.add (local.get $out) (local.get $c))))
            (local.set $a11 (v128.load offset=176 (i32.add (local.get $out) (local.get $c)))))
          (else
            (local.set $a0 (v128.const i32x4 0 0 0 0))
            (local.set $a1 (v128.const i32x4 0 0 0 0))
            (local.set $a2 (v128.const i32x4 0 0 0 0))
            (local.set $a3 (v128.const i32x4 0 0 0 0))
            (local.set $a4 (v128.const i32x4 0 0 0 0))
            (local.set $a5 (v128.const i32x4 0 0 0 0))
            (local.set $a6 (v128.const i32x4 0 0 0 0))
            (local.set $a7 (v128.const i32x4 0 0 0 0))
            (local.set $a8 (v128.const i32x4 0 0 0 0))
            (local.set $a9 (v128.const i32x4 0 0 0 0))
            (local.set $a10 (v128.const i32x4 0 0 0 0))
            (local.set $a11 (v128.const i32x4 0 0 0 0))))
        (local.set $v (i32.add (local.get $values) (local.get $c)))
        (local.set $j (i32.const 0))
        (block $rowsDone
          (loop $rows
            (br_if $rowsDone (i32.ge_u (local.get $j) (local.get $n)))
            (local.set $pj (f32x4.splat (f32.mul (local.get $weight)
              (f32.load (i32.add (local.get $p) (i32.shl (local.get $j) (i32.const 2)))))))
            (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $pj) (v128.load offset=0 (local.get $v)))))
            (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $pj) (v128.load offset=16 (local.get $v)))))
            (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $pj) (v128.load offset=32 (local.get $v)))))
            (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $pj) (v128.load offset=48 (local.get $v)))))
            (local.set $a4 (f32x4.add (local.get $a4) (f32x4.mul (local.get $pj) (v128.load offset=64 (local.get $v)))))
            (local.set $a5 (f32x4.add (local.get $a5) (f32x4.mul (local.get $pj) (v128.load offset=80 (local.get $v)))))
            (local.set $a6 (f32x4.add (local.get $a6) (f32x4.mul (local.get $pj) (v128.load offset=96 (local.get $v)))))
            (local.set $a7 (f32x4.add (local.get $a7) (f32x4.mul (local.get $pj) (v128.load offset=112 (local.get $v)))))
            (local.set $a8 (f32x4.add (local.get $a8) (f32x4.mul (local.get $pj) (v128.load offset=128 (local.get $v)))))
            (local.set $a9 (f32x4.add (local.get $a9) (f32x4.mul (local.get $pj) (v128.load offset=144 (local.get $v)))))
            (local.set $a10 (f32x4.add (local.get $a10) (f32x4.mul (local.get $pj) (v128.load offset=160 (local.get $v)))))
            (local.set $a11 (f32x4.add (local.get $a11) (f32x4.mul (local.get $pj) (v128.load offset=176 (local.get $v)))))
            (local.set $v (i32.add (local.get $v) (local.get $row)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $rows)))
        (v128.store offset=0 (i32.add (local.get $out) (local.get $c)) (local.get $a0))
        (v128.store offset=16 (i32.add (local.get $out) (local.get $c)) (local.get $a1))
        (v128.store offset=32 (i32.add (local.get $out) (local.get $c)) (local.get $a2))
        (v128.store offset=48 (i32.add (local.get $out) (local.get $c)) (local.get $a3))
        (v128.store offset=64 (i32.add (local.get $out) (local.get $c)) (local.get $a4))
        (v128.store offset=80 (i32.add (local.get $out) (local.get $c)) (local.get $a5))
        (v128.store offset=96 (i32.add (local.get $out) (local.get $c)) (local.get $a6))
        (v128.store offset=112 (i32.add (local.get $out) (local.get $c)) (local.get $a7))
        (v128.store offset=128 (i32.add (local.get $out) (local.get $c)) (local.get $a8))
        (v128.store offset=144 (i32.add (local.get $out) (local.get $c)) (local.get $a9))
        (v128.store offset=160 (i32.add (local.get $out) (local.get $c)) (local.get $a10))
        (v128.store offset=176 (i32.add (local.get $out) (local.get $c)) (local.get $a11))
        (local.set $c (i32.add (local.get $c) (i32.const 192)))
        (br $columns48)))
    (block $done16
      (loop $columns16
        (br_if $done16 (i32.gt_u (i32.add (local.get $c) (i32.const 64)) (local.get $row)))
        (if (local.get $accumulate)
          (then
            (local.set $a0 (v128.load offset=0 (i32.add (local.get $out) (local.get $c))))
            (local.set $a1 (v128.load offset=16 (i32.add (local.get $out) (local.get $c))))
            (local.set $a2 (v128.load offset=32 (i32.add (local.get $out) (local.get $c))))
            (local.set $a3 (v128.load offset=48 (i32.add (local.get $out) (local.get $c)))))
          (else
            (local.set $a0 (v128.const i32x4 0 0 0 0))
            (local.set $a1 (v128.const i32x4 0 0 0 0))
            (local.set $a2 (v128.const i32x4 0 0 0 0))
            (local.set $a3 (v128.const i32x4 0 0 0 0))))
        (local.set $v (i32.add (local.get $values) (local.get $c)))
        (local.set $j (i32.const 0))
        (block $rowsDone
          (loop $rows
            (br_if $rowsDone (i32.ge_u (local.get $j) (local.get $n)))
            (local.set $pj (f32x4.splat (f32.mul (local.get $weight)
              (f32.load (i32.add (local.get $p) (i32.shl (local.get $j) (i32.const 2)))))))
            (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $pj) (v128.load offset=0 (local.get $v)))))
            (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $pj) (v128.load offset=16 (local.get $v)))))
            (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $pj) (v128.load offset=32 (local.get $v)))))
            (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $pj) (v128.load offset=48 (local.get $v)))))
            (local.set $v (i32.add (local.get $v) (local.get $row)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $rows)))
        (v128.store offset=0 (i32.add (local.get $out) (local.get $c)) (local.get $a0))
        (v128.store offset=16 (i32.add (local.get $out) (local.get $c)) (local.get $a1))
        (v128.store offset=32 (i32.add (local.get $out) (local.get $c)) (local.get $a2))
        (v128.store offset=48 (i32.add (local.get $out) (local.get $c)) (local.get $a3))
        (local.set $c (i32.add (local.get $c) (i32.const 64)))
        (br $columns16)))
    (block $done4
      (loop $columns4
        (br_if $done4 (i32.ge_u (local.get $c) (local.get $row)))
        (if (local.get $accumulate)
          (then (local.set $a0 (v128.load (i32.add (local.get $out) (local.get $c)))))
          (else (local.set $a0 (v128.const i32x4 0 0 0 0))))
        (local.set $v (i32.add (local.get $values) (local.get $c)))
        (local.set $j (i32.const 0))
        (block $rowsDone
          (loop $rows
            (br_if $rowsDone (i32.ge_u (local.get $j) (local.get $n)))
            (local.set $pj (f32x4.splat (f32.mul (local.get $weight)
              (f32.load (i32.add (local.get $p) (i32.shl (local.get $j) (i32.const 2)))))))
            (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $pj) (v128.load (local.get $v)))))
            (local.set $v (i32.add (local.get $v) (local.get $row)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $rows)))
        (v128.store (i32.add (local.get $out) (local.get $c)) (local.get $a0))
        (local.set $c (i32.add (local.get $c) (i32.const 16)))
        (br $columns4))))

  ;; One query row of one head attending over its frames, the three steps
  ;; above with the softmax joint over all frames. plan holds, per frame,
  ;; three i32: the query (rotated for the frame), its first key, and how
  ;; many entries it sees; a frame's values lie valuesFromKeys bytes after its
  ;; keys. sink is the softmax variant's extra logit (-inf for none): this is
  ;; the softmax family of kernels/softmax.ts; a variant outside it runs the
  ;; fused kernel's JavaScript loop instead. The
  ;; scores of all frames go to s, one frame after another.
  (func $attendRow (export "attendRow")
    (param $plan i32) (param $frames i32) (param $valuesFromKeys i32) (param $dim i32)
    (param $scale f32) (param $sink f32) (param $s i32) (param $out i32)
    (local $f i32) (local $at i32) (local $record i32) (local $max f32) (local $z f64) (local $weight f32)
    ;; 1. scores, frame after frame, and their max
    (local.set $max (local.get $sink))
    (local.set $at (local.get $s))
    (local.set $record (local.get $plan))
    (block $scored
      (loop $frame
        (br_if $scored (i32.ge_u (local.get $f) (local.get $frames)))
        (local.set $max (f32.max (local.get $max)
          (call $scores (i32.load offset=0 (local.get $record)) (i32.load offset=4 (local.get $record))
            (i32.load offset=8 (local.get $record)) (local.get $dim) (local.get $scale) (local.get $at))))
        (local.set $at (i32.add (local.get $at) (i32.shl (i32.load offset=8 (local.get $record)) (i32.const 2))))
        (local.set $record (i32.add (local.get $record) (i32.const 12)))
        (local.set $f (i32.add (local.get $f) (i32.const 1)))
        (br $frame)))
    ;; 2. softmax over all of them, the sink in the denominator
    (local.set $z (call $exps (local.get $s) (i32.shr_u (i32.sub (local.get $at) (local.get $s)) (i32.const 2)) (local.get $max) (i32.const 1)))
    (if (f32.ne (local.get $sink) (f32.const -inf))
      (then (local.set $z (f64.add (local.get $z) (f64.promote_f32
        (f32x4.extract_lane 0 (call $exp (f32x4.splat (f32.sub (local.get $sink) (local.get $max))))))))))
    (local.set $weight (f32.demote_f64 (f64.div (f64.const 1) (local.get $z))))
    ;; 3. the weighted sum of the values, frame after frame
    (local.set $f (i32.const 0))
    (local.set $at (local.get $s))
    (local.set $record (local.get $plan))
    (block $summed
      (loop $frame
        (br_if $summed (i32.ge_u (local.get $f) (local.get $frames)))
        (call $weightedSum (local.get $at) (i32.add (i32.load offset=4 (local.get $record)) (local.get $valuesFromKeys))
          (i32.load offset=8 (local.get $record)) (local.get $dim) (local.get $weight) (local.get $out) (local.get $f))
        (local.set $at (i32.add (local.get $at) (i32.shl (i32.load offset=8 (local.get $record)) (i32.const 2))))
        (local.set $record (i32.add (local.get $record) (i32.const 12)))
        (local.set $f (i32.add (local.get $f) (i32.const 1)))
        (br $frame))))

  ;; attendRow for items [item0, item1) of a list of records, each
  ;; 12 * frames + 8 bytes: the item's plan (three i32 per frame, as
  ;; attendRow reads it), its sink logit (f32) and its output row (i32). The
  ;; scale comes as its float32 bits (the pool passes only i32 arguments);
  ;; s is this thread's room for one row's scores.
  (func (export "attendRows")
    (param $records i32) (param $item0 i32) (param $item1 i32) (param $frames i32) (param $valuesFromKeys i32)
    (param $dim i32) (param $scaleBits i32) (param $s i32)
    (local $size i32) (local $record i32) (local $item i32) (local $tail i32)
    (local.set $size (i32.add (i32.mul (local.get $frames) (i32.const 12)) (i32.const 8)))
    (local.set $item (local.get $item0))
    (block $done
      (loop $items
        (br_if $done (i32.ge_u (local.get $item) (local.get $item1)))
        (local.set $record (i32.add (local.get $records) (i32.mul (local.get $item) (local.get $size))))
        (local.set $tail (i32.add (local.get $record) (i32.sub (local.get $size) (i32.const 8))))
        (call $attendRow (local.get $record) (local.get $frames) (local.get $valuesFromKeys) (local.get $dim)
          (f32.reinterpret_i32 (local.get $scaleBits)) (f32.load (local.get $tail)) (local.get $s) (i32.load offset=4 (local.get $tail)))
        (local.set $item (i32.add (local.get $item) (i32.const 1)))
        (br $items))))

  ;; For rows [row0, row1) of x (rows of n floats): the row's max, and
  ;; sum_j exp(x[r, j] - max) in float64, the two steps that kernels/token_nll.ts
  ;; takes per row, at out + 16 r: the sum (f64), then the max (f32).
  (func (export "sumsOfExps") (param $x i32) (param $row0 i32) (param $row1 i32) (param $n i32) (param $out i32)
    (local $r i32) (local $row i32) (local $at i32) (local $max f32)
    (local.set $r (local.get $row0))
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $r) (local.get $row1)))
        (local.set $row (i32.add (local.get $x) (i32.mul (local.get $r) (i32.shl (local.get $n) (i32.const 2)))))
        (local.set $at (i32.add (local.get $out) (i32.shl (local.get $r) (i32.const 4))))
        (local.set $max (call $maxOf (local.get $row) (local.get $n)))
        (f64.store (local.get $at) (call $exps (local.get $row) (local.get $n) (local.get $max) (i32.const 0)))
        (f32.store offset=8 (local.get $at) (local.get $max))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rows))))

  ;; x[i] += y[i] for i < n, float32 (as a JavaScript float32 add rounds:
  ;; a float64 sum of two float32 values rounded once gives the float32
  ;; sum), four at a time, then one: the pooled layers' residual adds
  ;; (src/model/pooled_layers.ts), the stream and the product both in the
  ;; pool's memory (110M: 24 adds of 768 a token, 31 µs in JavaScript).
  (func (export "addInto") (param $x i32) (param $y i32) (param $n i32)
    (local $end i32) (local $quads i32)
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $quads (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done
      (loop $quad
        (br_if $done (i32.ge_u (local.get $x) (local.get $quads)))
        (v128.store (local.get $x) (f32x4.add (v128.load (local.get $x)) (v128.load (local.get $y))))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $y (i32.add (local.get $y) (i32.const 16)))
        (br $quad)))
    (block $done
      (loop $one
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (f32.store (local.get $x) (f32.add (f32.load (local.get $x)) (f32.load (local.get $y))))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $y (i32.add (local.get $y) (i32.const 4)))
        (br $one))))

  ;; RMSNorm of rows rows of dim floats, x's rows stride floats apart, into
  ;; out's (the same stride; out may be x): what kernels/rmsnorm.ts
  ;; rmsNormRows computes, bit for bit. The sum of squares is float64, one
  ;; term after another in column order (each square exact in float64), r =
  ;; 1 / sqrt(ss / dim + eps) in float64, then each output (x * r) * w in
  ;; float64 rounded once to float32, two columns a step (f64x2). The pooled
  ;; layers (src/model/pooled_layers.ts) normalise the residual stream with it
  ;; straight into a product's operand (110M: 768 floats, 2.3 µs in
  ;; JavaScript).
  (func $rmsNormRows (export "rmsNormRows") (param $x i32) (param $w i32) (param $rows i32) (param $dim i32) (param $stride i32) (param $eps f64) (param $out i32)
    (local $r i32) (local $i i32) (local $end i32) (local $pairs i32) (local $ss f64) (local $v f64) (local $inv f64) (local $invs v128)
    (local.set $end (i32.shl (local.get $dim) (i32.const 2)))
    (local.set $pairs (i32.and (local.get $end) (i32.const -8)))
    (block $done
      (loop $row
        (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $ss (f64.const 0))
        (local.set $i (i32.const 0))
        (block $summed
          (loop $sum
            (br_if $summed (i32.ge_u (local.get $i) (local.get $end)))
            (local.set $v (f64.promote_f32 (f32.load (i32.add (local.get $x) (local.get $i)))))
            (local.set $ss (f64.add (local.get $ss) (f64.mul (local.get $v) (local.get $v))))
            (local.set $i (i32.add (local.get $i) (i32.const 4)))
            (br $sum)))
        (local.set $inv (f64.div (f64.const 1)
          (f64.sqrt (f64.add (f64.div (local.get $ss) (f64.convert_i32_u (local.get $dim))) (local.get $eps)))))
        (local.set $invs (f64x2.splat (local.get $inv)))
        (local.set $i (i32.const 0))
        (block $paired
          (loop $pair
            (br_if $paired (i32.ge_u (local.get $i) (local.get $pairs)))
            (v128.store64_lane 0 (i32.add (local.get $out) (local.get $i)) (f32x4.demote_f64x2_zero
              (f64x2.mul
                (f64x2.mul (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $x) (local.get $i)))) (local.get $invs))
                (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $w) (local.get $i)))))))
            (local.set $i (i32.add (local.get $i) (i32.const 8)))
            (br $pair)))
        (if (i32.lt_u (local.get $i) (local.get $end))
          (then (f32.store (i32.add (local.get $out) (local.get $i)) (f32.demote_f64
            (f64.mul
              (f64.mul (f64.promote_f32 (f32.load (i32.add (local.get $x) (local.get $i)))) (local.get $inv))
              (f64.promote_f32 (f32.load (i32.add (local.get $w) (local.get $i)))))))))
        (local.set $x (i32.add (local.get $x) (i32.shl (local.get $stride) (i32.const 2))))
        (local.set $out (i32.add (local.get $out) (i32.shl (local.get $stride) (i32.const 2))))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $row))))

  ;; A decode step's input norm as a pool job (kernels/pool_ops.ts PoolOp.NormOperand):
  ;; rows [row0, row1) of the residual x ([rows, dim]) normalised by w
  ;; (rmsNormRows' bits; eps the float64 at epsAt) into out ([rows, stride],
  ;; a product's operand), each row's padding [dim, stride) zeroed.
  (func (export "normOperand") (param $x i32) (param $w i32) (param $epsAt i32) (param $dim i32) (param $stride i32) (param $out i32) (param $row0 i32) (param $row1 i32)
    (local $r i32) (local $o i32) (local $p i32) (local $end i32)
    (local.set $r (local.get $row0))
    (block $done
      (loop $row
        (br_if $done (i32.ge_u (local.get $r) (local.get $row1)))
        (local.set $o (i32.add (local.get $out) (i32.shl (i32.mul (local.get $r) (local.get $stride)) (i32.const 2))))
        (call $rmsNormRows
          (i32.add (local.get $x) (i32.shl (i32.mul (local.get $r) (local.get $dim)) (i32.const 2)))
          (local.get $w) (i32.const 1) (local.get $dim) (local.get $dim) (f64.load (local.get $epsAt)) (local.get $o))
        (local.set $p (i32.add (local.get $o) (i32.shl (local.get $dim) (i32.const 2))))
        (local.set $end (i32.add (local.get $o) (i32.shl (local.get $stride) (i32.const 2))))
        (block $zeroed
          (loop $zero
            (br_if $zeroed (i32.ge_u (local.get $p) (local.get $end)))
            (f32.store (local.get $p) (f32.const 0))
            (local.set $p (i32.add (local.get $p) (i32.const 4)))
            (br $zero)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $row))))

  ;; n floats from src to dst (not overlapping), sixteen bytes a step, then one.
  (func $copyFloats (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $quads i32)
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $quads (i32.add (local.get $src) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done
      (loop $quad
        (br_if $done (i32.ge_u (local.get $src) (local.get $quads)))
        (v128.store (local.get $dst) (v128.load (local.get $src)))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (br $quad)))
    (block $done
      (loop $one
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (f32.store (local.get $dst) (f32.load (local.get $src)))
        (local.set $src (i32.add (local.get $src) (i32.const 4)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
        (br $one))))

  ;; kernels/rope.ts rotateHeads (forwards), n heads: head h's row at src +
  ;; h srcStride into dst + h dstStride (strides in bytes), rotated by the
  ;; angles cos[i], sin[i] of its rotaryDim/2 pairs (pairs: channels (2i, 2i
  ;; + 1), else (i, i + rotaryDim/2)), channels past rotaryDim copied. Each
  ;; output a * c - b * s (a * s + b * c) in float64 rounded once to float32,
  ;; as the JavaScript loop computes it.
  (func $rotateHeads (param $src i32) (param $srcStride i32) (param $dst i32) (param $dstStride i32) (param $n i32)
      (param $cos i32) (param $sin i32) (param $pairs i32) (param $rotaryDim i32) (param $headDim i32)
    (local $half i32) (local $step i32) (local $other i32) (local $i i32) (local $h i32) (local $x i32) (local $y i32)
    (local $c f64) (local $s f64) (local $a f64) (local $b f64)
    (local.set $half (i32.shr_u (local.get $rotaryDim) (i32.const 1)))
    (local.set $step (select (i32.const 8) (i32.const 4) (local.get $pairs)))
    (local.set $other (select (i32.const 4) (i32.shl (local.get $half) (i32.const 2)) (local.get $pairs)))
    (block $rotated
      (loop $pair
        (br_if $rotated (i32.ge_u (local.get $i) (local.get $half)))
        (local.set $c (f64.promote_f32 (f32.load (i32.add (local.get $cos) (i32.shl (local.get $i) (i32.const 2))))))
        (local.set $s (f64.promote_f32 (f32.load (i32.add (local.get $sin) (i32.shl (local.get $i) (i32.const 2))))))
        (local.set $x (i32.add (local.get $src) (i32.mul (local.get $step) (local.get $i))))
        (local.set $y (i32.add (local.get $dst) (i32.mul (local.get $step) (local.get $i))))
        (local.set $h (i32.const 0))
        (block $heads
          (loop $head
            (br_if $heads (i32.ge_u (local.get $h) (local.get $n)))
            (local.set $a (f64.promote_f32 (f32.load (local.get $x))))
            (local.set $b (f64.promote_f32 (f32.load (i32.add (local.get $x) (local.get $other)))))
            (f32.store (local.get $y) (f32.demote_f64 (f64.sub (f64.mul (local.get $a) (local.get $c)) (f64.mul (local.get $b) (local.get $s)))))
            (f32.store (i32.add (local.get $y) (local.get $other))
              (f32.demote_f64 (f64.add (f64.mul (local.get $a) (local.get $s)) (f64.mul (local.get $b) (local.get $c)))))
            (local.set $x (i32.add (local.get $x) (local.get $srcStride)))
            (local.set $y (i32.add (local.get $y) (local.get $dstStride)))
            (local.set $h (i32.add (local.get $h) (i32.const 1)))
            (br $head)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $pair)))
    (if (i32.lt_u (local.get $rotaryDim) (local.get $headDim))
      (then
        (local.set $h (i32.const 0))
        (block $copied
          (loop $head
            (br_if $copied (i32.ge_u (local.get $h) (local.get $n)))
            (call $copyFloats
              (i32.add (i32.add (local.get $src) (i32.mul (local.get $h) (local.get $srcStride))) (i32.shl (local.get $rotaryDim) (i32.const 2)))
              (i32.add (i32.add (local.get $dst) (i32.mul (local.get $h) (local.get $dstStride))) (i32.shl (local.get $rotaryDim) (i32.const 2)))
              (i32.sub (local.get $headDim) (local.get $rotaryDim)))
            (local.set $h (i32.add (local.get $h) (i32.const 1)))
            (br $head))))))

  ;; A decode step's head split as a pool job (kernels/pool_ops.ts PoolOp.QkvRope;
  ;; kernels/qkv_heads.ts qkvHeadsInto's numbers for one token): the record
  ;; (int32 words, kernels/qkv_rope.ts) says where one row of q|k|v lies,
  ;; ([heads + 2 kvHeads, headDim]), the counts and the rope layout, the
  ;; keys' angles and where each kv head's rotated key and its value go (kv
  ;; head g at keys + g kvStride, values + g kvStride: a cache's new slot),
  ;; then per frame its angles and where its rotated queries go ([heads,
  ;; headDim]).
  (func (export "qkvRope") (param $record i32)
    (local $qkv i32) (local $heads i32) (local $kvHeads i32) (local $headDim i32) (local $rotaryDim i32) (local $pairs i32)
    (local $row i32) (local $kvStride i32) (local $g i32) (local $f i32) (local $frame i32)
    (local.set $qkv (i32.load offset=0 (local.get $record)))
    (local.set $heads (i32.load offset=4 (local.get $record)))
    (local.set $kvHeads (i32.load offset=8 (local.get $record)))
    (local.set $headDim (i32.load offset=12 (local.get $record)))
    (local.set $rotaryDim (i32.load offset=16 (local.get $record)))
    (local.set $pairs (i32.load offset=20 (local.get $record)))
    (local.set $kvStride (i32.load offset=40 (local.get $record)))
    (local.set $row (i32.shl (local.get $headDim) (i32.const 2)))
    (block $copied
      (loop $value
        (br_if $copied (i32.ge_u (local.get $g) (local.get $kvHeads)))
        (call $copyFloats
          (i32.add (local.get $qkv) (i32.mul (i32.add (i32.add (local.get $heads) (local.get $kvHeads)) (local.get $g)) (local.get $row)))
          (i32.add (i32.load offset=36 (local.get $record)) (i32.mul (local.get $g) (local.get $kvStride)))
          (local.get $headDim))
        (local.set $g (i32.add (local.get $g) (i32.const 1)))
        (br $value)))
    (call $rotateHeads
      (i32.add (local.get $qkv) (i32.mul (local.get $heads) (local.get $row))) (local.get $row)
      (i32.load offset=32 (local.get $record)) (local.get $kvStride) (local.get $kvHeads)
      (i32.load offset=24 (local.get $record)) (i32.load offset=28 (local.get $record))
      (local.get $pairs) (local.get $rotaryDim) (local.get $headDim))
    (block $rotated
      (loop $frames
        (br_if $rotated (i32.ge_u (local.get $f) (i32.load offset=44 (local.get $record))))
        (local.set $frame (i32.add (i32.add (local.get $record) (i32.const 48)) (i32.mul (local.get $f) (i32.const 12))))
        (call $rotateHeads
          (local.get $qkv) (local.get $row)
          (i32.load offset=8 (local.get $frame)) (local.get $row) (local.get $heads)
          (i32.load offset=0 (local.get $frame)) (i32.load offset=4 (local.get $frame))
          (local.get $pairs) (local.get $rotaryDim) (local.get $headDim))
        (local.set $f (i32.add (local.get $f) (i32.const 1)))
        (br $frames))))

  ;; A decode program's per-token patch (kernels/decode_patch.ts, where the
  ;; table's words are listed): for each of `layers` rows of the table at
  ;; `table`, the words of its QkvRope record (kernels/qkv_rope.ts) and of its
  ;; heads' Attend records (kernels/pooled_attention.ts) that a token changes:
  ;; the keys' angles, the frames' angles and queries, the cache slot, and
  ;; each frame's entries of each head (kv head h / group's run). The writes
  ;; of setQkvRopeAngles, setQkvRopeFrame, setQkvRopeSlot and
  ;; setAttendFrameEntries (kernels/decode_patch.ref.ts), word for word
  ;; (addresses wrap at 2^32 as int32 stores of them do), in one call instead
  ;; of JavaScript that V8 runs as bytecode through a process's first tokens
  ;; and compiles on a background thread that takes a core.
  (func (export "patchDecodeLayers") (param $table i32) (param $layers i32) (param $heads i32) (param $group i32) (param $rowBytes i32)
    (local $row i32) (local $rope i32) (local $attend i32) (local $keys i32) (local $kvBytes i32) (local $block i32)
    (local $frames i32) (local $recordBytes i32) (local $frame i32) (local $f i32) (local $h i32) (local $first i32) (local $count i32)
    (local $entry i32)
    (local.set $row (local.get $table))
    (block $done
      (loop $layer
        (br_if $done (i32.eqz (local.get $layers)))
        (local.set $rope (i32.load offset=0 (local.get $row)))
        (local.set $attend (i32.load offset=4 (local.get $row)))
        (local.set $keys (i32.load offset=8 (local.get $row)))
        (local.set $kvBytes (i32.load offset=16 (local.get $row)))
        (local.set $block (i32.load offset=24 (local.get $row)))
        (local.set $frames (i32.load offset=0 (local.get $block)))
        ;; the QkvRope record: keys' angles, frame count, the slot of kv head 0's key and value, a run's bytes
        (i32.store offset=24 (local.get $rope) (i32.load offset=4 (local.get $block)))
        (i32.store offset=28 (local.get $rope) (i32.load offset=8 (local.get $block)))
        (i32.store offset=44 (local.get $rope) (local.get $frames))
        (i32.store offset=32 (local.get $rope)
          (i32.add (local.get $keys) (i32.mul (i32.load offset=20 (local.get $row)) (local.get $rowBytes))))
        (i32.store offset=36 (local.get $rope)
          (i32.add (i32.load offset=12 (local.get $row)) (i32.mul (i32.load offset=20 (local.get $row)) (local.get $rowBytes))))
        (i32.store offset=40 (local.get $rope) (local.get $kvBytes))
        ;; per frame: the QkvRope record's angles and queries, then every head's entries
        (local.set $recordBytes (i32.add (i32.mul (local.get $frames) (i32.const 12)) (i32.const 8)))
        (local.set $f (i32.const 0))
        (block $framesDone
          (loop $frameLoop
            (br_if $framesDone (i32.ge_u (local.get $f) (local.get $frames)))
            (local.set $frame (i32.add (i32.add (local.get $block) (i32.const 12)) (i32.mul (local.get $f) (i32.const 20))))
            (local.set $entry (i32.add (i32.add (local.get $rope) (i32.const 48)) (i32.mul (local.get $f) (i32.const 12))))
            (i32.store offset=0 (local.get $entry) (i32.load offset=0 (local.get $frame)))
            (i32.store offset=4 (local.get $entry) (i32.load offset=4 (local.get $frame)))
            (i32.store offset=8 (local.get $entry) (i32.load offset=8 (local.get $frame)))
            (local.set $first (i32.add (local.get $keys) (i32.mul (i32.load offset=12 (local.get $frame)) (local.get $rowBytes))))
            (local.set $count (i32.sub (i32.load offset=16 (local.get $frame)) (i32.load offset=12 (local.get $frame))))
            (local.set $entry (i32.add (local.get $attend) (i32.mul (local.get $f) (i32.const 12))))
            (local.set $h (i32.const 0))
            (block $headsDone
              (loop $head
                (br_if $headsDone (i32.ge_u (local.get $h) (local.get $heads)))
                (i32.store offset=4 (local.get $entry)
                  (i32.add (local.get $first) (i32.mul (i32.div_u (local.get $h) (local.get $group)) (local.get $kvBytes))))
                (i32.store offset=8 (local.get $entry) (local.get $count))
                (local.set $entry (i32.add (local.get $entry) (local.get $recordBytes)))
                (local.set $h (i32.add (local.get $h) (i32.const 1)))
                (br $head)))
            (local.set $f (i32.add (local.get $f) (i32.const 1)))
            (br $frameLoop)))
        (local.set $row (i32.add (local.get $row) (i32.const 28)))
        (local.set $layers (i32.sub (local.get $layers) (i32.const 1)))
        (br $layer))))

  ;; RoPE's angles of one position (kernels/rope.ts ropeAnglesFrom, for a
  ;; decode program's per-token patch: src/model/decode_program.ts): for i <
  ;; half, angle = p * freqs[i] (float64s at freqs), cos[i] = cos(angle) and
  ;; sin[i] = sin(angle) as float32. cos and sin are fdlibm's, as V8 computes
  ;; Math.cos and Math.sin (src/base/ieee754.cc: __kernel_cos, __kernel_sin,
  ;; the reduction of __ieee754_rem_pio2 while |x|'s high word is at most
  ;; 0x413921fb, |x| < 2^20 pi/2 = 1,647,100: fdlibm's comment says 2^19),
  ;; operation for operation, so the bits are JavaScript's (test/pool.test.ts
  ;; compares the float32s). Returns 0, having written some angles, where an
  ;; angle is past that range (or not finite): the caller then computes them
  ;; all in JavaScript.
  ;;
  ;; fdlibm's notice, which its copies keep (V8's ieee754.cc too):
  ;;   Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.
  ;;   Developed at SunPro, a Sun Microsystems, Inc. business.
  ;;   Permission to use, copy, modify, and distribute this software is
  ;;   freely granted, provided that this notice is preserved.
  (func (export "ropeAngles") (param $p f64) (param $freqs i32) (param $half i32) (param $cos i32) (param $sin i32) (result i32)
    (local $i i32) (local $x f64) (local $hx i32) (local $ix i32) (local $n i32) (local $y0 f64) (local $y1 f64)
    (local $z f64) (local $t f64) (local $r f64) (local $w f64) (local $fn f64) (local $j i32) (local $c f64) (local $s f64)
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $i) (local.get $half)))
        (local.set $x (f64.mul (local.get $p) (f64.load (i32.add (local.get $freqs) (i32.shl (local.get $i) (i32.const 3))))))
        (local.set $hx (call $highWord (local.get $x)))
        (local.set $ix (i32.and (local.get $hx) (i32.const 0x7fffffff)))
        (if (i32.gt_u (local.get $ix) (i32.const 0x413921fb)) (then (return (i32.const 0))))
        (if (i32.le_u (local.get $ix) (i32.const 0x3fe921fb))
          (then
            ;; |x| ~<= pi/4: no reduction
            (local.set $c (call $kernelCos (local.get $x) (f64.const 0)))
            (local.set $s (call $kernelSin (local.get $x) (f64.const 0) (i32.const 0))))
          (else
            (if (i32.lt_u (local.get $ix) (i32.const 0x4002d97c))
              (then
                ;; |x| < 3pi/4: n = +-1
                (if (i32.gt_s (local.get $hx) (i32.const 0))
                  (then
                    (local.set $z (f64.sub (local.get $x) (f64.const 0x1.921fb544p+0)))
                    (if (i32.ne (local.get $ix) (i32.const 0x3ff921fb))
                      (then
                        (local.set $y0 (f64.sub (local.get $z) (f64.const 0x1.0b4611a626331p-34)))
                        (local.set $y1 (f64.sub (f64.sub (local.get $z) (local.get $y0)) (f64.const 0x1.0b4611a626331p-34))))
                      (else
                        (local.set $z (f64.sub (local.get $z) (f64.const 0x1.0b4611a6p-34)))
                        (local.set $y0 (f64.sub (local.get $z) (f64.const 0x1.3198a2e037073p-69)))
                        (local.set $y1 (f64.sub (f64.sub (local.get $z) (local.get $y0)) (f64.const 0x1.3198a2e037073p-69)))))
                    (local.set $n (i32.const 1)))
                  (else
                    (local.set $z (f64.add (local.get $x) (f64.const 0x1.921fb544p+0)))
                    (if (i32.ne (local.get $ix) (i32.const 0x3ff921fb))
                      (then
                        (local.set $y0 (f64.add (local.get $z) (f64.const 0x1.0b4611a626331p-34)))
                        (local.set $y1 (f64.add (f64.sub (local.get $z) (local.get $y0)) (f64.const 0x1.0b4611a626331p-34))))
                      (else
                        (local.set $z (f64.add (local.get $z) (f64.const 0x1.0b4611a6p-34)))
                        (local.set $y0 (f64.add (local.get $z) (f64.const 0x1.3198a2e037073p-69)))
                        (local.set $y1 (f64.add (f64.sub (local.get $z) (local.get $y0)) (f64.const 0x1.3198a2e037073p-69)))))
                    (local.set $n (i32.const -1)))))
              (else
                ;; |x| < 2^20 pi/2: n = nearest integer to |x| 2/pi, then |x| - n pi/2 in two to four parts
                (local.set $t (f64.abs (local.get $x)))
                (local.set $n (i32.trunc_f64_s (f64.add (f64.mul (local.get $t) (f64.const 0x1.45f306dc9c883p-1)) (f64.const 0.5))))
                (local.set $fn (f64.convert_i32_s (local.get $n)))
                (local.set $r (f64.sub (local.get $t) (f64.mul (local.get $fn) (f64.const 0x1.921fb544p+0))))
                (local.set $w (f64.mul (local.get $fn) (f64.const 0x1.0b4611a626331p-34)))
                (local.set $y0 (f64.sub (local.get $r) (local.get $w)))
                ;; (fdlibm's npio2_hw[n - 1] is the high word of n pi/2)
                (if (i32.eqz (i32.and (i32.lt_s (local.get $n) (i32.const 32))
                      (i32.ne (local.get $ix) (call $highWord (f64.mul (local.get $fn) (f64.const 0x1.921fb54442d18p+0))))))
                  (then
                    (local.set $j (i32.shr_s (local.get $ix) (i32.const 20)))
                    (if (i32.gt_s (i32.sub (local.get $j) (i32.and (i32.shr_u (call $highWord (local.get $y0)) (i32.const 20)) (i32.const 0x7ff))) (i32.const 16))
                      (then
                        ;; a second round, good to 118 bits
                        (local.set $t (local.get $r))
                        (local.set $w (f64.mul (local.get $fn) (f64.const 0x1.0b4611a6p-34)))
                        (local.set $r (f64.sub (local.get $t) (local.get $w)))
                        (local.set $w (f64.sub (f64.mul (local.get $fn) (f64.const 0x1.3198a2e037073p-69))
                          (f64.sub (f64.sub (local.get $t) (local.get $r)) (local.get $w))))
                        (local.set $y0 (f64.sub (local.get $r) (local.get $w)))
                        (if (i32.gt_s (i32.sub (local.get $j) (i32.and (i32.shr_u (call $highWord (local.get $y0)) (i32.const 20)) (i32.const 0x7ff))) (i32.const 49))
                          (then
                            ;; a third, good to 151 bits
                            (local.set $t (local.get $r))
                            (local.set $w (f64.mul (local.get $fn) (f64.const 0x1.3198a2ep-69)))
                            (local.set $r (f64.sub (local.get $t) (local.get $w)))
                            (local.set $w (f64.sub (f64.mul (local.get $fn) (f64.const 0x1.b839a252049c1p-104))
                              (f64.sub (f64.sub (local.get $t) (local.get $r)) (local.get $w))))
                            (local.set $y0 (f64.sub (local.get $r) (local.get $w)))))))))
                (local.set $y1 (f64.sub (f64.sub (local.get $r) (local.get $y0)) (local.get $w)))
                (if (i32.lt_s (local.get $hx) (i32.const 0))
                  (then
                    (local.set $y0 (f64.neg (local.get $y0)))
                    (local.set $y1 (f64.neg (local.get $y1)))
                    (local.set $n (i32.sub (i32.const 0) (local.get $n)))))))
            ;; cos and sin by the quadrant n & 3
            (local.set $j (i32.and (local.get $n) (i32.const 3)))
            (local.set $c (call $kernelCos (local.get $y0) (local.get $y1)))
            (local.set $s (call $kernelSin (local.get $y0) (local.get $y1) (i32.const 1)))
            (if (i32.eq (local.get $j) (i32.const 1))
              (then (local.set $t (local.get $c)) (local.set $c (f64.neg (local.get $s))) (local.set $s (local.get $t))))
            (if (i32.eq (local.get $j) (i32.const 2))
              (then (local.set $c (f64.neg (local.get $c))) (local.set $s (f64.neg (local.get $s)))))
            (if (i32.eq (local.get $j) (i32.const 3))
              (then (local.set $t (local.get $c)) (local.set $c (local.get $s)) (local.set $s (f64.neg (local.get $t)))))))
        (f32.store (i32.add (local.get $cos) (i32.shl (local.get $i) (i32.const 2))) (f32.demote_f64 (local.get $c)))
        (f32.store (i32.add (local.get $sin) (i32.shl (local.get $i) (i32.const 2))) (f32.demote_f64 (local.get $s)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $each)))
    (i32.const 1))

  ;; The high 32 bits of a float64 (fdlibm's GET_HIGH_WORD).
  (func $highWord (param $x f64) (result i32)
    (i32.wrap_i64 (i64.shr_u (i64.reinterpret_f64 (local.get $x)) (i64.const 32))))

  ;; fdlibm's __kernel_cos: cos(x + y) for |x| ~<= pi/4, y the tail of x.
  (func $kernelCos (param $x f64) (param $y f64) (result f64)
    (local $ix i32) (local $z f64) (local $r f64) (local $qx f64)
    (local.set $ix (i32.and (call $highWord (local.get $x)) (i32.const 0x7fffffff)))
    ;; |x| < 2^-27: 1 ((int) x == 0 there)
    (if (i32.lt_u (local.get $ix) (i32.const 0x3e400000)) (then (return (f64.const 1))))
    (local.set $z (f64.mul (local.get $x) (local.get $x)))
    (local.set $r (f64.mul (local.get $z)
      (f64.add (f64.const 0x1.555555555554cp-5) (f64.mul (local.get $z)
      (f64.add (f64.const -0x1.6c16c16c15177p-10) (f64.mul (local.get $z)
      (f64.add (f64.const 0x1.a01a019cb159p-16) (f64.mul (local.get $z)
      (f64.add (f64.const -0x1.27e4f809c52adp-22) (f64.mul (local.get $z)
      (f64.add (f64.const 0x1.1ee9ebdb4b1c4p-29) (f64.mul (local.get $z) (f64.const -0x1.8fae9be8838d4p-37)))))))))))))
    (if (i32.lt_u (local.get $ix) (i32.const 0x3fd33333))
      (then (return (f64.sub (f64.const 1)
        (f64.sub (f64.mul (f64.const 0.5) (local.get $z)) (f64.sub (f64.mul (local.get $z) (local.get $r)) (f64.mul (local.get $x) (local.get $y))))))))
    ;; qx: 0.28125 past 0.78125, else x/4 (its high word less 2^21, the low word 0)
    (local.set $qx (select (f64.const 0.28125)
      (f64.reinterpret_i64 (i64.shl (i64.extend_i32_u (i32.sub (local.get $ix) (i32.const 0x00200000))) (i64.const 32)))
      (i32.gt_u (local.get $ix) (i32.const 0x3fe90000))))
    (f64.sub (f64.sub (f64.const 1) (local.get $qx))
      (f64.sub (f64.sub (f64.mul (f64.const 0.5) (local.get $z)) (local.get $qx))
        (f64.sub (f64.mul (local.get $z) (local.get $r)) (f64.mul (local.get $x) (local.get $y))))))

  ;; fdlibm's __kernel_sin: sin(x + y) for |x| ~<= pi/4, y the tail of x (iy 0: y is 0).
  (func $kernelSin (param $x f64) (param $y f64) (param $iy i32) (result f64)
    (local $z f64) (local $v f64) (local $r f64)
    ;; |x| < 2^-27: x
    (if (i32.lt_u (i32.and (call $highWord (local.get $x)) (i32.const 0x7fffffff)) (i32.const 0x3e400000)) (then (return (local.get $x))))
    (local.set $z (f64.mul (local.get $x) (local.get $x)))
    (local.set $v (f64.mul (local.get $z) (local.get $x)))
    (local.set $r
      (f64.add (f64.const 0x1.111111110f8a6p-7) (f64.mul (local.get $z)
      (f64.add (f64.const -0x1.a01a019c161d5p-13) (f64.mul (local.get $z)
      (f64.add (f64.const 0x1.71de357b1fe7dp-19) (f64.mul (local.get $z)
      (f64.add (f64.const -0x1.ae5e68a2b9cebp-26) (f64.mul (local.get $z) (f64.const 0x1.5d93a5acfd57cp-33))))))))))
    (if (i32.eqz (local.get $iy))
      (then (return (f64.add (local.get $x) (f64.mul (local.get $v) (f64.add (f64.const -0x1.5555555555549p-3) (f64.mul (local.get $z) (local.get $r))))))))
    (f64.sub (local.get $x)
      (f64.sub
        (f64.sub (f64.mul (local.get $z) (f64.sub (f64.mul (f64.const 0.5) (local.get $y)) (f64.mul (local.get $v) (local.get $r)))) (local.get $y))
        (f64.mul (local.get $v) (f64.const -0x1.5555555555549p-3)))))

  ;; swiglu for rows [row0, row1) of x ([rows, 2 hidden]) into out ([rows, hidden]): a pool's share.
  (func (export "swigluRange") (param $x i32) (param $row0 i32) (param $row1 i32) (param $hidden i32) (param $out i32)
    (local $half i32)
    (local.set $half (i32.shl (local.get $hidden) (i32.const 2)))
    (if (i32.lt_u (local.get $row0) (local.get $row1))
      (then (call $swiglu
        (i32.add (local.get $x) (i32.shl (i32.mul (local.get $row0) (local.get $half)) (i32.const 1)))
        (i32.sub (local.get $row1) (local.get $row0))
        (local.get $hidden)
        (i32.add (local.get $out) (i32.mul (local.get $row0) (local.get $half)))))))
)
