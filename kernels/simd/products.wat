;; Weight products for the worker pool (kernels/pool.ts, kernels/split_products.ts),
;; in WebAssembly SIMD, on the pool's own shared memory: every worker
;; instantiates this module on the same memory and computes its own range of
;; output rows. Every pointer is a byte offset into that memory.
;;
;; Packed layout. A matrix's rows (output features) go in groups (16 rows
;; for f32, 4 for q8), the last group padded with zero rows, and each group
;; is one contiguous run of memory that the loop reads front to back: the
;; whole matrix is a single sequential stream. (Four separate rows of a few
;; hundred bytes each are four short streams, which the hardware prefetcher
;; never locks onto: stored row by row, a 32000 x 768 product streamed at
;; half the speed of XNNPACK's packed float32 weights.) cols is a multiple
;; of 32 (the callers pad rows and x with zeros); row0 is a multiple of 4
;; (the pool gives the float32 product whole groups of 16).
;;
;;   f32 group: for each column, the 16 rows' weights, 64 bytes
;;   q8 group:  for each block of 32 columns, the 4 rows' blocks as int8
;;              (128 bytes), then their 4 float32 scales (16 bytes)
;;
;;   productF32(w, x, out, row0, row1, cols, tokens, outStride)
;;       out[t * outStride + r] = sum_c w[r, c] * x[t, c]    r in [row0, row1), t < tokens
;;
;; For one token (decode) a call reads its range as two streams, half the
;; range apart, in turns (productF32One): the hardware prefetcher keeps more
;; of memory's lines in flight for two streams than for one.
;;
;; The float32 product adds each output's terms one by one in column order,
;; from 0, one float32 rounding for each product and each sum (no fused
;; multiply-add): the order XNNPACK's products (the tfjs wasm backend's
;; matMul) use, so the two give the same bits, and an output never depends
;; on how the rows are split. Each SIMD lane is one row; the 16 rows of a
;; group are four independent chains of additions.
;;
;; Q8 is llama.cpp's Q8_0 (with a float32 scale): a block of 32 weights is
;; stored as 32 int8 q and one scale d, weight = d * q. x is quantised per
;; block of 32 too, but to int16 (quantizeX16: 256 times finer than int8,
;; whose rounding of x cost more accuracy than the weights' own: README), so
;; a block's dot product is exact integer arithmetic (the weights i8 -> i16,
;; i32x4.dot_i16x8_s; at most 32 * 127 * 32767 < 2^31) and only the
;; per-block scaling is in floating point:
;;
;;   quantizeQ8(w, n, q, d)      w: n floats -> q: n int8, d: n/32 float32 scales
;;   quantizeX16(x, n, q, d)     x: n floats -> q: n int16, d: n/32 float32 scales
;;   productQ8(w, xq, xd, out, row0, row1, cols, tokens, outStride)
;;       out[t * outStride + r] = sum_b f32(sum_i q[r, 32b + i] * xq[t, 32b + i]) * (d[r, b] * xd[t, b])
;;
;; Per output the float steps happen in block order, one rounding each (the
;; integer sum's conversion to float32 one of them: it can pass 2^24), so a
;; plain loop (kernels/products.ref.ts) reproduces them exactly, as it does
;; the float32 product's. (productF32One's two streams, tried on productQ8 for
;; one token, groups of 4 rows two at a time in turns of 8 blocks: 1.12x the
;; µs a 15M q8 token on two threads, 1.05x on one, bench/inproc_ab.ts: q8
;; reads a quarter of the bytes, and its loop is bound by its µops.)
;;
;; Assembled by scripts/assemble_wasm.ts into products.wasm.ts.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; Written by productQ8 after each of a group's rows, read by nothing: it
  ;; orders the loop's code (see there).
  (global $rowOrder (mut i32) (i32.const 0))

  ;; Store the first n (1..4; 4 or more: all) lanes of v at p: a group's
  ;; padding rows are never written.
  (func $store4 (param $p i32) (param $v v128) (param $n i32)
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then (v128.store (local.get $p) (local.get $v)) (return)))
    (f32.store (local.get $p) (f32x4.extract_lane 0 (local.get $v)))
    (if (i32.ge_u (local.get $n) (i32.const 2)) (then (f32.store offset=4 (local.get $p) (f32x4.extract_lane 1 (local.get $v)))))
    (if (i32.ge_u (local.get $n) (i32.const 3)) (then (f32.store offset=8 (local.get $p) (f32x4.extract_lane 2 (local.get $v))))))

;; Store the rows of a group's four accumulators (rows g .. g + 15, lanes in
  ;; row order) that lie in [row0, row1), at p (the group's first row): the
  ;; rows of a group outside this call's range belong to another thread.
  (func $storeGroup (param $p i32) (param $g i32) (param $row0 i32) (param $row1 i32)
    (param $a0 v128) (param $a1 v128) (param $a2 v128) (param $a3 v128)
    (if (i32.and (i32.ge_u (local.get $g) (local.get $row0)) (i32.lt_u (local.get $g) (local.get $row1)))
      (then (call $store4 (local.get $p) (local.get $a0) (i32.sub (local.get $row1) (local.get $g)))))
    (local.set $g (i32.add (local.get $g) (i32.const 4)))
    (if (i32.and (i32.ge_u (local.get $g) (local.get $row0)) (i32.lt_u (local.get $g) (local.get $row1)))
      (then (call $store4 (i32.add (local.get $p) (i32.const 16)) (local.get $a1) (i32.sub (local.get $row1) (local.get $g)))))
    (local.set $g (i32.add (local.get $g) (i32.const 4)))
    (if (i32.and (i32.ge_u (local.get $g) (local.get $row0)) (i32.lt_u (local.get $g) (local.get $row1)))
      (then (call $store4 (i32.add (local.get $p) (i32.const 32)) (local.get $a2) (i32.sub (local.get $row1) (local.get $g)))))
    (local.set $g (i32.add (local.get $g) (i32.const 4)))
    (if (i32.and (i32.ge_u (local.get $g) (local.get $row0)) (i32.lt_u (local.get $g) (local.get $row1)))
      (then (call $store4 (i32.add (local.get $p) (i32.const 48)) (local.get $a3) (i32.sub (local.get $row1) (local.get $g))))))

  ;; Float32 product, rows [row0, row1) for every token, a group of 16 rows at
  ;; a time (a group that the range only partly covers is computed whole and
  ;; stored in part); tokens two at a time (eight accumulators: each loaded
  ;; column of weights serves two tokens), then the odd one; a call for one
  ;; token alone (decode) reads two groups at a time (productF32One, below).
  ;;
  ;; Decode streams weights from memory (a 15M step reads 61 MB, more than the
  ;; 32 MB L3). Measured on a step's 25 products, each thread a half of each,
  ;; steps alternating in one process (2 vCPU EPYC): this loop takes about
  ;; 1.06x a plain v128 read of the same bytes on two threads (1.00-1.12),
  ;; and no longer than run.c's products (gcc, 256-bit FMA) in runs
  ;; alternating with it (1.45-1.63 ms a step against 1.59-2.04). Tried,
  ;; slower or no gain: a scalar load 4 KB ahead each step as a software
  ;; prefetch (1.1-1.25x the time on two threads, 1.4-1.6x on one); two
  ;; adjacent groups at once (1.2x; 1.4x; on 4 KB pages);
  ;; groups of 32 rows, eight chains of one addition a column (9% faster on
  ;; one thread in that probe; in decode, bench/builds_ab.ts, 0.93-1.07x
  ;; against an A/A of 0.98); reading the classifier's rows in the other
  ;; direction every other token, for what the L3 still holds: in a probe of
  ;; a step's stream (C, 128-bit reads, each thread a half of each product,
  ;; modes alternating in blocks of 16 passes in one process, A/A 0.99-1.00)
  ;; each thread's half of the classifier read descending every other pass
  ;; took 1.00-1.01x the time on two threads (0.99-1.01x on one), even the
  ;; whole stream reversed every other pass 0.99-1.01x (1.03-1.05x on one),
  ;; and the classifier's groups in the other order, each read ascending (a
  ;; claim order), 1.25-1.5x. This L3 does not replace like LRU: it keeps part
  ;; of a cyclic stream larger than itself whatever the direction (a 40 MB
  ;; cycle reads at 1.4-2x the rate of a 120 MB one), so there is no end of
  ;; the last pass to start from.
  ;;
  ;; One token on one thread, weights from memory, alternating with run.c's
  ;; matmul built as runomp (bench/f32_product.ts): 0.90-1.08x its time per
  ;; 15M shape, 0.81-1.00x on a whole step; on two threads split statically
  ;; (no pool) 1.02-1.11x. This loop streams memory as fast as run.c's. In L2
  ;; it reads about 60 GB/s, bound by its µops (V8 folds no load into the
  ;; arithmetic, and the order of the sums rules out FMA), not by the chains'
  ;; latency: groups of 24 rows, six chains (13 registers: no spill, where 32
  ;; rows' eight chains spilled one) gained 2-4% in cache, 0-8% from memory.
  ;;
  ;; From memory, both loops are held back by 4 KB pages. A step's 61 MB
  ;; takes about 15,000 TLB misses, each a nested page walk in this VM.
  ;; THP is madvise-only here, and V8 never madvises WebAssembly memory, so
  ;; without help the pool's memory gets 4 KB pages. Collapsed into 2 MB
  ;; pages (first by a diagnostic LD_PRELOAD shim), one thread ran a step in
  ;; 1595-1737 µs against 2232-2422 on 4 KB pages; run.c's matmul ran
  ;; 1425-1553 against 2292-2642. runomp's own decode reads its checkpoint
  ;; through a read-only mmap, which the page cache maps partly in 2 MB
  ;; folios: 1.30x runomp's speed with the same weights copied into
  ;; anonymous memory, on two threads (bench/decode.ts --anon-peer). So the
  ;; pool now asks for 2 MB pages itself (kernels/huge_pages.ts, an optional
  ;; native madvise; bench/decode.ts --pages-ab measures both sizes). On 4 KB
  ;; pages, a change to this loop's µops shows little from memory.
  (func (export "productF32")
    (param $w i32) (param $x i32) (param $out i32) (param $row0 i32) (param $row1 i32)
    (param $cols i32) (param $tokens i32) (param $outStride i32)
    (if (i32.eq (local.get $tokens) (i32.const 1))
      (then (call $productF32One (local.get $w) (local.get $x) (local.get $out) (local.get $row0) (local.get $row1) (local.get $cols)) (return)))
    (call $productF32Tokens (local.get $w) (local.get $x) (local.get $out) (local.get $row0) (local.get $row1)
      (local.get $cols) (local.get $tokens) (local.get $outStride)))

  ;; One token (decode): the range's G groups two at a time, group i with
  ;; group i + ceil(G/2), so that the call reads two streams half its range
  ;; apart, in turns of 2 KB (32 columns) from each; the middle group of an
  ;; odd count alone. Each row's terms are added in column order as on
  ;; every other path: the same bits.
  ;;
  ;; Why two streams: from memory, one stream of 128-bit loads keeps too few
  ;; of memory's lines in flight (WebAssembly has no wider load and no
  ;; prefetch; bench/RESULTS.md, "Where the two vCPUs are"), and the
  ;; hardware prefetcher runs ahead on each stream it sees. Why turns: the
  ;; two groups' columns in lockstep (eight accumulators live with a column's
  ;; eight loads) spilled V8's registers and ran at half speed in cache;
  ;; a turn holds one group's four accumulators and loads at a time.
  ;; Measured, one process, bench/inproc_ab.ts against one stream
  ;; (bench/RESULTS.md, "Two streams a product"): µs a greedy token 0.81x
  ;; on one thread (15M), 0.97x on two, 0.93x at 110M, 1.00x at 260K (in
  ;; cache); lockstep had read 0.94x on two threads at 15M and 1.18x at 260K.
  ;; Three streams in lockstep (twelve accumulators) against two in lockstep,
  ;; bench/f32_product.ts: no faster on one thread, 1.05x on a two-thread
  ;; split of a step.
  (func $productF32One
    (param $w i32) (param $x i32) (param $out i32) (param $row0 i32) (param $row1 i32) (param $cols i32)
    (local $groupBytes i32) (local $first i32) (local $groups i32) (local $pairs i32) (local $ahead i32)
    (local $r i32) (local $s i32) (local $p i32) (local $q i32) (local $end i32) (local $xc i32) (local $i i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $b0 v128) (local $b1 v128) (local $b2 v128) (local $b3 v128) (local $xa v128) (local $xb v128) (local $xd i32) (local $turnEnd i32)
    (local.set $groupBytes (i32.shl (local.get $cols) (i32.const 6)))
    (local.set $first (i32.and (local.get $row0) (i32.const -16)))
    (local.set $groups (i32.shr_u (i32.add (i32.sub (local.get $row1) (local.get $first)) (i32.const 15)) (i32.const 4)))
    (local.set $pairs (i32.shr_u (local.get $groups) (i32.const 1)))
    (local.set $ahead (i32.shl (i32.sub (local.get $groups) (local.get $pairs)) (i32.const 4))) ;; rows from a pair's first group to its second
    (local.set $i (i32.const 0))
    (block $pairsDone
      (loop $pairLoop
        (br_if $pairsDone (i32.ge_u (local.get $i) (local.get $pairs)))
        (local.set $r (i32.add (local.get $first) (i32.shl (local.get $i) (i32.const 4))))
        (local.set $s (i32.add (local.get $r) (local.get $ahead)))
        (local.set $p (i32.add (local.get $w) (i32.mul (i32.shr_u (local.get $r) (i32.const 4)) (local.get $groupBytes))))
        (local.set $q (i32.add (local.get $w) (i32.mul (i32.shr_u (local.get $s) (i32.const 4)) (local.get $groupBytes))))
        (local.set $end (i32.add (local.get $p) (local.get $groupBytes)))
        (local.set $xc (local.get $x))
        (local.set $a0 (v128.const i32x4 0 0 0 0))
        (local.set $a1 (v128.const i32x4 0 0 0 0))
        (local.set $a2 (v128.const i32x4 0 0 0 0))
        (local.set $a3 (v128.const i32x4 0 0 0 0))
        (local.set $b0 (v128.const i32x4 0 0 0 0))
        (local.set $b1 (v128.const i32x4 0 0 0 0))
        (local.set $b2 (v128.const i32x4 0 0 0 0))
        (local.set $b3 (v128.const i32x4 0 0 0 0))
        (block $turnsDone
          (loop $turns
            (br_if $turnsDone (i32.ge_u (local.get $p) (local.get $end)))
            ;; a turn: 32 columns of the first group, then the same columns of the second
            (local.set $xd (local.get $xc))
            (local.set $turnEnd (i32.add (local.get $p) (i32.const 2048)))
            (loop $columnsA
              (local.set $xa (v128.load32_splat (local.get $xc)))
              (local.set $xb (v128.load32_splat offset=4 (local.get $xc)))
              (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (v128.load (local.get $p)) (local.get $xa))))
              (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (v128.load offset=16 (local.get $p)) (local.get $xa))))
              (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (v128.load offset=32 (local.get $p)) (local.get $xa))))
              (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (v128.load offset=48 (local.get $p)) (local.get $xa))))
              (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (v128.load offset=64 (local.get $p)) (local.get $xb))))
              (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (v128.load offset=80 (local.get $p)) (local.get $xb))))
              (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (v128.load offset=96 (local.get $p)) (local.get $xb))))
              (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (v128.load offset=112 (local.get $p)) (local.get $xb))))
              (local.set $xc (i32.add (local.get $xc) (i32.const 8)))
              (local.set $p (i32.add (local.get $p) (i32.const 128)))
              (br_if $columnsA (i32.lt_u (local.get $p) (local.get $turnEnd))))
            (local.set $turnEnd (i32.add (local.get $q) (i32.const 2048)))
            (loop $columnsB
              (local.set $xa (v128.load32_splat (local.get $xd)))
              (local.set $xb (v128.load32_splat offset=4 (local.get $xd)))
              (local.set $b0 (f32x4.add (local.get $b0) (f32x4.mul (v128.load (local.get $q)) (local.get $xa))))
              (local.set $b1 (f32x4.add (local.get $b1) (f32x4.mul (v128.load offset=16 (local.get $q)) (local.get $xa))))
              (local.set $b2 (f32x4.add (local.get $b2) (f32x4.mul (v128.load offset=32 (local.get $q)) (local.get $xa))))
              (local.set $b3 (f32x4.add (local.get $b3) (f32x4.mul (v128.load offset=48 (local.get $q)) (local.get $xa))))
              (local.set $b0 (f32x4.add (local.get $b0) (f32x4.mul (v128.load offset=64 (local.get $q)) (local.get $xb))))
              (local.set $b1 (f32x4.add (local.get $b1) (f32x4.mul (v128.load offset=80 (local.get $q)) (local.get $xb))))
              (local.set $b2 (f32x4.add (local.get $b2) (f32x4.mul (v128.load offset=96 (local.get $q)) (local.get $xb))))
              (local.set $b3 (f32x4.add (local.get $b3) (f32x4.mul (v128.load offset=112 (local.get $q)) (local.get $xb))))
              (local.set $xd (i32.add (local.get $xd) (i32.const 8)))
              (local.set $q (i32.add (local.get $q) (i32.const 128)))
              (br_if $columnsB (i32.lt_u (local.get $q) (local.get $turnEnd))))
            (br $turns)))
        (call $storeGroup (i32.add (local.get $out) (i32.shl (local.get $r) (i32.const 2)))
          (local.get $r) (local.get $row0) (local.get $row1)
          (local.get $a0) (local.get $a1) (local.get $a2) (local.get $a3))
        (call $storeGroup (i32.add (local.get $out) (i32.shl (local.get $s) (i32.const 2)))
          (local.get $s) (local.get $row0) (local.get $row1)
          (local.get $b0) (local.get $b1) (local.get $b2) (local.get $b3))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $pairLoop)))
    ;; an odd count's middle group, rows [r, r + 16) of the range
    (if (i32.and (local.get $groups) (i32.const 1))
      (then
        (local.set $r (i32.add (local.get $first) (i32.shl (local.get $pairs) (i32.const 4))))
        (call $productF32Tokens (local.get $w) (local.get $x) (local.get $out)
          (select (local.get $row0) (local.get $r) (i32.gt_u (local.get $row0) (local.get $r)))
          (select (local.get $row1) (i32.add (local.get $r) (i32.const 16)) (i32.lt_u (local.get $row1) (i32.add (local.get $r) (i32.const 16))))
          (local.get $cols) (i32.const 1) (i32.const 0)))))

  (func $productF32Tokens
    (param $w i32) (param $x i32) (param $out i32) (param $row0 i32) (param $row1 i32)
    (param $cols i32) (param $tokens i32) (param $outStride i32)
    (local $rowBytes i32) (local $groupBytes i32) (local $r i32) (local $t i32)
    (local $g i32) (local $end i32) (local $p i32) (local $x0 i32) (local $x1 i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $b0 v128) (local $b1 v128) (local $b2 v128) (local $b3 v128)
    (local $xa v128) (local $xb v128) (local $wc v128)
    (local.set $rowBytes (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $groupBytes (i32.shl (local.get $cols) (i32.const 6)))
    (local.set $r (i32.and (local.get $row0) (i32.const -16)))
    (block $groupsDone
      (loop $groups
        (br_if $groupsDone (i32.ge_u (local.get $r) (local.get $row1)))
        (local.set $g (i32.add (local.get $w) (i32.mul (i32.shr_u (local.get $r) (i32.const 4)) (local.get $groupBytes))))
        (local.set $end (i32.add (local.get $g) (local.get $groupBytes)))
        (local.set $t (i32.const 0))
        (block $pairsDone
          (loop $pairs
            (br_if $pairsDone (i32.gt_u (i32.add (local.get $t) (i32.const 2)) (local.get $tokens)))
            (local.set $x0 (i32.add (local.get $x) (i32.mul (local.get $t) (local.get $rowBytes))))
            (local.set $x1 (i32.add (local.get $x0) (local.get $rowBytes)))
            (local.set $a0 (v128.const i32x4 0 0 0 0))
            (local.set $a1 (v128.const i32x4 0 0 0 0))
            (local.set $a2 (v128.const i32x4 0 0 0 0))
            (local.set $a3 (v128.const i32x4 0 0 0 0))
            (local.set $b0 (v128.const i32x4 0 0 0 0))
            (local.set $b1 (v128.const i32x4 0 0 0 0))
            (local.set $b2 (v128.const i32x4 0 0 0 0))
            (local.set $b3 (v128.const i32x4 0 0 0 0))
            (local.set $p (local.get $g))
            (loop $columns2
              (local.set $xa (v128.load32_splat (local.get $x0)))
              (local.set $xb (v128.load32_splat (local.get $x1)))
              (local.set $wc (v128.load (local.get $p)))
              (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $wc) (local.get $xa))))
              (local.set $b0 (f32x4.add (local.get $b0) (f32x4.mul (local.get $wc) (local.get $xb))))
              (local.set $wc (v128.load offset=16 (local.get $p)))
              (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $wc) (local.get $xa))))
              (local.set $b1 (f32x4.add (local.get $b1) (f32x4.mul (local.get $wc) (local.get $xb))))
              (local.set $wc (v128.load offset=32 (local.get $p)))
              (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $wc) (local.get $xa))))
              (local.set $b2 (f32x4.add (local.get $b2) (f32x4.mul (local.get $wc) (local.get $xb))))
              (local.set $wc (v128.load offset=48 (local.get $p)))
              (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $wc) (local.get $xa))))
              (local.set $b3 (f32x4.add (local.get $b3) (f32x4.mul (local.get $wc) (local.get $xb))))
              (local.set $x0 (i32.add (local.get $x0) (i32.const 4)))
              (local.set $x1 (i32.add (local.get $x1) (i32.const 4)))
              (local.set $p (i32.add (local.get $p) (i32.const 64)))
              (br_if $columns2 (i32.lt_u (local.get $p) (local.get $end))))
            (call $storeGroup
              (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $outStride)) (local.get $r)) (i32.const 2)))
              (local.get $r) (local.get $row0) (local.get $row1)
              (local.get $a0) (local.get $a1) (local.get $a2) (local.get $a3))
            (call $storeGroup
              (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (i32.add (local.get $t) (i32.const 1)) (local.get $outStride)) (local.get $r)) (i32.const 2)))
              (local.get $r) (local.get $row0) (local.get $row1)
              (local.get $b0) (local.get $b1) (local.get $b2) (local.get $b3))
            (local.set $t (i32.add (local.get $t) (i32.const 2)))
            (br $pairs)))
        (if (i32.lt_u (local.get $t) (local.get $tokens))
          (then
            (local.set $x0 (i32.add (local.get $x) (i32.mul (local.get $t) (local.get $rowBytes))))
            (local.set $a0 (v128.const i32x4 0 0 0 0))
            (local.set $a1 (v128.const i32x4 0 0 0 0))
            (local.set $a2 (v128.const i32x4 0 0 0 0))
            (local.set $a3 (v128.const i32x4 0 0 0 0))
            (local.set $p (local.get $g))
            ;; two columns a step, in column order (cols is a multiple of 32):
            ;; V8 emits all of a step's loads before its arithmetic, and four
            ;; columns' 16 weight vectors and splats spilled to the stack;
            ;; two columns' fit the registers (measured, one thread: 288x288 in
            ;; L2 69 GB/s against 49, 768x288 in L3 59 against 46)
            (loop $columns1
              (local.set $xa (v128.load32_splat (local.get $x0)))
              (local.set $xb (v128.load32_splat offset=4 (local.get $x0)))
              (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (v128.load (local.get $p)) (local.get $xa))))
              (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (v128.load offset=16 (local.get $p)) (local.get $xa))))
              (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (v128.load offset=32 (local.get $p)) (local.get $xa))))
              (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (v128.load offset=48 (local.get $p)) (local.get $xa))))
              (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (v128.load offset=64 (local.get $p)) (local.get $xb))))
              (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (v128.load offset=80 (local.get $p)) (local.get $xb))))
              (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (v128.load offset=96 (local.get $p)) (local.get $xb))))
              (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (v128.load offset=112 (local.get $p)) (local.get $xb))))
              (local.set $x0 (i32.add (local.get $x0) (i32.const 8)))
              (local.set $p (i32.add (local.get $p) (i32.const 128)))
              (br_if $columns1 (i32.lt_u (local.get $p) (local.get $end))))
            (call $storeGroup
              (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $outStride)) (local.get $r)) (i32.const 2)))
              (local.get $r) (local.get $row0) (local.get $row1)
              (local.get $a0) (local.get $a1) (local.get $a2) (local.get $a3))))
        (local.set $r (i32.add (local.get $r) (i32.const 16)))
        (br $groups))))

    ;; Q8_0 quantisation of n floats (n a multiple of 32; the weights), block by block:
  ;; d = max|x| / 127, q = x * (1/d) rounded to nearest, ties to even (0 for
  ;; an all-zero block).
  (func (export "quantizeQ8") (param $x i32) (param $n i32) (param $q i32) (param $d i32)
    (local $end i32) (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128)
    (local $v4 v128) (local $v5 v128) (local $v6 v128) (local $v7 v128)
    (local $m v128) (local $amax f32) (local $scale f32) (local $inv v128)
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $blocks
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (local.set $v0 (v128.load offset=0 (local.get $x)))
        (local.set $v1 (v128.load offset=16 (local.get $x)))
        (local.set $v2 (v128.load offset=32 (local.get $x)))
        (local.set $v3 (v128.load offset=48 (local.get $x)))
        (local.set $v4 (v128.load offset=64 (local.get $x)))
        (local.set $v5 (v128.load offset=80 (local.get $x)))
        (local.set $v6 (v128.load offset=96 (local.get $x)))
        (local.set $v7 (v128.load offset=112 (local.get $x)))
        (local.set $m (f32x4.max
          (f32x4.max (f32x4.max (f32x4.abs (local.get $v0)) (f32x4.abs (local.get $v1))) (f32x4.max (f32x4.abs (local.get $v2)) (f32x4.abs (local.get $v3))))
          (f32x4.max (f32x4.max (f32x4.abs (local.get $v4)) (f32x4.abs (local.get $v5))) (f32x4.max (f32x4.abs (local.get $v6)) (f32x4.abs (local.get $v7))))))
        (local.set $amax (f32.max
          (f32.max (f32x4.extract_lane 0 (local.get $m)) (f32x4.extract_lane 1 (local.get $m)))
          (f32.max (f32x4.extract_lane 2 (local.get $m)) (f32x4.extract_lane 3 (local.get $m)))))
        (local.set $scale (f32.div (local.get $amax) (f32.const 127)))
        (f32.store (local.get $d) (local.get $scale))
        (local.set $inv (f32x4.splat
          (select (f32.div (f32.const 1) (local.get $scale)) (f32.const 0) (f32.ne (local.get $scale) (f32.const 0)))))
        ;; round, then narrow i32 -> i16 -> i8 (no value leaves [-127, 127])
        (v128.store (local.get $q) (i8x16.narrow_i16x8_s
          (i16x8.narrow_i32x4_s
            (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v0) (local.get $inv))))
            (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v1) (local.get $inv)))))
          (i16x8.narrow_i32x4_s
            (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v2) (local.get $inv))))
            (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v3) (local.get $inv)))))))
        (v128.store offset=16 (local.get $q) (i8x16.narrow_i16x8_s
          (i16x8.narrow_i32x4_s
            (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v4) (local.get $inv))))
            (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v5) (local.get $inv)))))
          (i16x8.narrow_i32x4_s
            (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v6) (local.get $inv))))
            (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v7) (local.get $inv)))))))
        (local.set $x (i32.add (local.get $x) (i32.const 128)))
        (local.set $q (i32.add (local.get $q) (i32.const 32)))
        (local.set $d (i32.add (local.get $d) (i32.const 4)))
        (br $blocks))))

  ;; x's blocks of 32 floats as int16, block by block: d = max|x| / 32767,
  ;; q = x * (1/d) rounded to nearest, ties to even (0 for an all-zero block).
  (func (export "quantizeX16") (param $x i32) (param $n i32) (param $q i32) (param $d i32)
    (local $end i32) (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128)
    (local $v4 v128) (local $v5 v128) (local $v6 v128) (local $v7 v128)
    (local $m v128) (local $amax f32) (local $scale f32) (local $inv v128)
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $blocks
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (local.set $v0 (v128.load offset=0 (local.get $x)))
        (local.set $v1 (v128.load offset=16 (local.get $x)))
        (local.set $v2 (v128.load offset=32 (local.get $x)))
        (local.set $v3 (v128.load offset=48 (local.get $x)))
        (local.set $v4 (v128.load offset=64 (local.get $x)))
        (local.set $v5 (v128.load offset=80 (local.get $x)))
        (local.set $v6 (v128.load offset=96 (local.get $x)))
        (local.set $v7 (v128.load offset=112 (local.get $x)))
        (local.set $m (f32x4.max
          (f32x4.max (f32x4.max (f32x4.abs (local.get $v0)) (f32x4.abs (local.get $v1))) (f32x4.max (f32x4.abs (local.get $v2)) (f32x4.abs (local.get $v3))))
          (f32x4.max (f32x4.max (f32x4.abs (local.get $v4)) (f32x4.abs (local.get $v5))) (f32x4.max (f32x4.abs (local.get $v6)) (f32x4.abs (local.get $v7))))))
        (local.set $amax (f32.max
          (f32.max (f32x4.extract_lane 0 (local.get $m)) (f32x4.extract_lane 1 (local.get $m)))
          (f32.max (f32x4.extract_lane 2 (local.get $m)) (f32x4.extract_lane 3 (local.get $m)))))
        (local.set $scale (f32.div (local.get $amax) (f32.const 32767)))
        (f32.store (local.get $d) (local.get $scale))
        (local.set $inv (f32x4.splat
          (select (f32.div (f32.const 1) (local.get $scale)) (f32.const 0) (f32.ne (local.get $scale) (f32.const 0)))))
        ;; round, then narrow i32 -> i16 (no value leaves [-32767, 32767])
        (v128.store offset=0 (local.get $q) (i16x8.narrow_i32x4_s
          (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v0) (local.get $inv))))
          (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v1) (local.get $inv))))))
        (v128.store offset=16 (local.get $q) (i16x8.narrow_i32x4_s
          (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v2) (local.get $inv))))
          (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v3) (local.get $inv))))))
        (v128.store offset=32 (local.get $q) (i16x8.narrow_i32x4_s
          (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v4) (local.get $inv))))
          (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v5) (local.get $inv))))))
        (v128.store offset=48 (local.get $q) (i16x8.narrow_i32x4_s
          (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v6) (local.get $inv))))
          (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v7) (local.get $inv))))))
        (local.set $x (i32.add (local.get $x) (i32.const 128)))
        (local.set $q (i32.add (local.get $q) (i32.const 64)))
        (local.set $d (i32.add (local.get $d) (i32.const 4)))
        (br $blocks))))

  ;; Q8 product, rows [row0, row1) for every token, a group of four rows at a
  ;; time; x's int16 blocks (quantizeX16) are loaded once for the group's four rows.
  (func (export "productQ8")
    (param $w i32) (param $xq i32) (param $xd i32) (param $out i32)
    (param $row0 i32) (param $row1 i32) (param $cols i32) (param $tokens i32) (param $outStride i32)
    (local $groupBytes i32) (local $r i32) (local $t i32) (local $g i32) (local $end i32) (local $p i32)
    (local $xb i32) (local $xs i32) (local $scaleBytes i32)
    (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128)
    (local $xl0 v128) (local $xh0 v128) (local $xl1 v128) (local $xh1 v128)
    (local $acc v128)
    ;; a group: cols / 32 blocks of 144 bytes
    (local.set $groupBytes (i32.mul (i32.shr_u (local.get $cols) (i32.const 5)) (i32.const 144)))
    (local.set $scaleBytes (i32.shr_u (local.get $cols) (i32.const 3)))
    (local.set $r (local.get $row0))
    (block $groupsDone
      (loop $groups
        (br_if $groupsDone (i32.ge_u (local.get $r) (local.get $row1)))
        (local.set $g (i32.add (local.get $w) (i32.mul (i32.shr_u (local.get $r) (i32.const 2)) (local.get $groupBytes))))
        (local.set $end (i32.add (local.get $g) (local.get $groupBytes)))
        (local.set $t (i32.const 0))
        (block $tokensDone
          (loop $tokenLoop
            (br_if $tokensDone (i32.ge_u (local.get $t) (local.get $tokens)))
            (local.set $xb (i32.add (local.get $xq) (i32.mul (local.get $t) (i32.shl (local.get $cols) (i32.const 1)))))
            (local.set $xs (i32.add (local.get $xd) (i32.mul (local.get $t) (local.get $scaleBytes))))
            (local.set $acc (v128.const i32x4 0 0 0 0))
            (local.set $p (local.get $g))
            (loop $blocks
              (local.set $xl0 (v128.load (local.get $xb)))
              (local.set $xh0 (v128.load offset=16 (local.get $xb)))
              (local.set $xl1 (v128.load offset=32 (local.get $xb)))
              (local.set $xh1 (v128.load offset=48 (local.get $xb)))
              ;; the four rows' block dot products, written out (a call per
              ;; block costs more than the block: V8 does not inline them).
              ;; v128.load8x8_s loads 8 int8 and widens them to int16 in one
              ;; instruction (16 bytes: two, where v128.load, extend_low and
              ;; extend_high took four); its address is an explicit add, since
              ;; V8 makes each offset= of a load8x8_s a register of its own (16
              ;; of them, spilled). After each row its sum goes to $rowOrder,
              ;; which nothing reads: V8 (TurboFan) would otherwise emit all of
              ;; an iteration's 20 loads first and spill their vectors to the
              ;; stack; a global's write keeps its place among the loads, so a
              ;; row's arithmetic comes before the next row's loads and nothing
              ;; spills (measured: 25 GB/s of weights in cache against 19 for
              ;; the loop with extends and spills)
              (local.set $s0 (i32x4.add
                (i32x4.add
                  (i32x4.dot_i16x8_s (v128.load8x8_s (i32.add (local.get $p) (i32.const 0))) (local.get $xl0))
                  (i32x4.dot_i16x8_s (v128.load8x8_s (i32.add (local.get $p) (i32.const 8))) (local.get $xh0)))
                (i32x4.add
                  (i32x4.dot_i16x8_s (v128.load8x8_s (i32.add (local.get $p) (i32.const 16))) (local.get $xl1))
                  (i32x4.dot_i16x8_s (v128.load8x8_s (i32.add (local.get $p) (i32.const 24))) (local.get $xh1)))))
              (global.set $rowOrder (i32x4.extract_lane 0 (local.get $s0)))
              (local.set $s1 (i32x4.add
                (i32x4.add
                  (i32x4.dot_i16x8_s (v128.load8x8_s (i32.add (local.get $p) (i32.const 32))) (local.get $xl0))
                  (i32x4.dot_i16x8_s (v128.load8x8_s (i32.add (local.get $p) (i32.const 40))) (local.get $xh0)))
                (i32x4.add
                  (i32x4.dot_i16x8_s (v128.load8x8_s (i32.add (local.get $p) (i32.const 48))) (local.get $xl1))
                  (i32x4.dot_i16x8_s (v128.load8x8_s (i32.add (local.get $p) (i32.const 56))) (local.get $xh1)))))
              (global.set $rowOrder (i32x4.extract_lane 0 (local.get $s1)))
              (local.set $s2 (i32x4.add
                (i32x4.add
                  (i32x4.dot_i16x8_s (v128.load8x8_s (i32.add (local.get $p) (i32.const 64))) (local.get $xl0))
                  (i32x4.dot_i16x8_s (v128.load8x8_s (i32.add (local.get $p) (i32.const 72))) (local.get $xh0)))
                (i32x4.add
                  (i32x4.dot_i16x8_s (v128.load8x8_s (i32.add (local.get $p) (i32.const 80))) (local.get $xl1))
                  (i32x4.dot_i16x8_s (v128.load8x8_s (i32.add (local.get $p) (i32.const 88))) (local.get $xh1)))))
              (global.set $rowOrder (i32x4.extract_lane 0 (local.get $s2)))
              (local.set $s3 (i32x4.add
                (i32x4.add
                  (i32x4.dot_i16x8_s (v128.load8x8_s (i32.add (local.get $p) (i32.const 96))) (local.get $xl0))
                  (i32x4.dot_i16x8_s (v128.load8x8_s (i32.add (local.get $p) (i32.const 104))) (local.get $xh0)))
                (i32x4.add
                  (i32x4.dot_i16x8_s (v128.load8x8_s (i32.add (local.get $p) (i32.const 112))) (local.get $xl1))
                  (i32x4.dot_i16x8_s (v128.load8x8_s (i32.add (local.get $p) (i32.const 120))) (local.get $xh1)))))
              ;; [sum s0, sum s1, sum s2, sum s3]
              (local.set $s0 (i32x4.add
                (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $s0) (local.get $s1))
                (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $s0) (local.get $s1))))
              (local.set $s2 (i32x4.add
                (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $s2) (local.get $s3))
                (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $s2) (local.get $s3))))
              (local.set $s0 (i32x4.add
                (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $s0) (local.get $s2))
                (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $s0) (local.get $s2))))
              ;; acc += isum * (row scales * x's scale), the scales after the blocks
              (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul
                (f32x4.convert_i32x4_s (local.get $s0))
                (f32x4.mul (v128.load offset=128 (local.get $p)) (f32x4.splat (f32.load (local.get $xs)))))))
              (local.set $xb (i32.add (local.get $xb) (i32.const 64)))
              (local.set $xs (i32.add (local.get $xs) (i32.const 4)))
              (local.set $p (i32.add (local.get $p) (i32.const 144)))
              (br_if $blocks (i32.lt_u (local.get $p) (local.get $end))))
            (call $store4
              (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $outStride)) (local.get $r)) (i32.const 2)))
              (local.get $acc)
              (i32.sub (local.get $row1) (local.get $r)))
            (local.set $t (i32.add (local.get $t) (i32.const 1)))
            (br $tokenLoop)))
        (local.set $r (i32.add (local.get $r) (i32.const 4)))
        (br $groups))))
)
