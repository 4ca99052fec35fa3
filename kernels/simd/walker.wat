;; The worker pool's program walker (kernels/pool_walker.ts, "Programs"):
;; one thread's walk of a program run's steps, in WebAssembly, so that
;; the claims, barriers and dispatch of a decode step run as compiled code
;; from a process's first token (in JavaScript, V8 compiled them on a
;; background thread that took one of the cores through the first ~260
;; tokens). The protocol is kernels/pool_walker.ts's, word for word: the
;; control words of kernels/pool_control.ts (they lie in the pool's memory, at
;; `ctrl`), claim words claimed as a job's are, LEFT words, tags and barriers;
;; the units run by the loops a job runs (pool_ops.ts), so the same bits.
;;
;; An every-thread step is no step of its own in the walk: each thread
;; runs it whole, on its own copy ($argsOf: per-thread arguments), at its
;; first claim of the step after it, after that claim's wait (pool_walker.ts,
;; "Every-thread steps").
;;
;; The loops come from the other two modules on the same memory, imported:
;; products.wat's (productF32, productQ8, quantizeX16) and loops.wat's shared
;; build (the rest). A caller step is the imported JavaScript `callerStep`
;; (which catches its own errors: it stores FAILED itself); the clock that
;; bounds the spins (read every 64 of them) is the imported `uptime`, Node's
;; process.uptime (seconds): a native function, so that V8 has no JavaScript
;; of it to compile in a process's first tokens (performance.now is
;; JavaScript around the native clock: it and its helpers took some 10 ms of
;; TurboFan's background thread there, bench/cold_start.ts).
;;
;; A unit that traps (a pointer past the memory's end) unwinds this walk: the
;; thread's JavaScript catches it, reads `step` and `take` (this instance's
;; globals: one instance per thread), counts the claim, sets FAILED and walks
;; on from that step (walk's `from`): the run still closes (pool_walker.ts, Errors).
;; `take` holds a claim's units from its compareExchange until its finish, so
;; a fault anywhere in between (a unit's trap, or the stack running out in a
;; call) is counted, and a fault outside a claim (take 0) leaves nothing held:
;; the walk can go on from `step` as well.
;;
;; STOP (word 8, byte 32: set by dispose, or when the pool breaks: a worker
;; gone) ends the sleeps at a barrier and after a claim, so no thread waits
;; on a worker that will never count its units: at a barrier the walk
;; returns 0; after a claim ($afterSteps) the claim is counted and the walk
;; goes on to the step's barrier, which returns 0 if it sleeps. (A thread
;; that breaks the pool, and dispose, set FAILED first, so such a claim runs
;; nothing.)
;;
;; Assembled by scripts/assemble_wasm.ts into walker.wasm.ts.
(module
  (import "env" "memory" (memory 1 65536 shared))
  (import "env" "productF32" (func $productF32 (param i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "env" "productQ8" (func $productQ8 (param i32 i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "env" "quantizeX16" (func $quantizeX16 (param i32 i32 i32 i32)))
  (import "env" "attendRows" (func $attendRows (param i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "env" "sumsOfExps" (func $sumsOfExps (param i32 i32 i32 i32 i32)))
  (import "env" "swigluRange" (func $swigluRange (param i32 i32 i32 i32 i32)))
  (import "env" "pickRows" (func $pickRows (param i32 i32 i32 i32 i32)))
  (import "env" "normOperand" (func $normOperand (param i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "env" "qkvRope" (func $qkvRope (param i32)))
  (import "env" "addInto" (func $addInto (param i32 i32 i32)))
  (import "env" "callerStep" (func $callerStep (param i32)))
  (import "env" "uptime" (func $uptime (result f64)))
  ;; after a sleep at a barrier that ran its whole $timeout: the caller's
  ;; looks at the keeper (pool.ts WorkerPool.probeKeeper: a keeper gone breaks the pool,
  ;; STOP set, which the next round sees); a worker's does nothing
  (import "env" "slept" (func $slept))

  ;; the clock in ms (any origin: only differences are used)
  (func $now (result f64) (f64.mul (call $uptime) (f64.const 1000)))

  ;; the step whose unit this thread runs (or whose words it walks), and the
  ;; units of its claim in flight (0: none): read after a trap
  (global $step (mut i32) (i32.const 0))
  (global $take (mut i32) (i32.const 0))
  ;; each read once after a fault, then cleared (-1, 0): a fault before the
  ;; next walk has set them must not read this walk's again
  (func (export "step") (result i32) (local $s i32)
    (local.set $s (global.get $step)) (global.set $step (i32.const -1)) (local.get $s))
  (func (export "take") (result i32) (local $t i32)
    (local.set $t (global.get $take)) (global.set $take (i32.const 0)) (local.get $t))

  ;; pool_control.ts's control words (byte offsets: 4 x the word) and fields
  ;; FAILED 4 -> 16, AT_BARRIER 11 -> 44; a step's line: STEP_CLAIM 0,
  ;; STEP_OP 1 -> 4, STEP_UNIT_ROWS 2 -> 8, STEP_ROWS 3 -> 12, STEP_ARGS 4 ->
  ;; 16, STEP_UNITS 12 -> 48, STEP_THREAD_BYTES 13 -> 52, STEP_FLAGS 14 ->
  ;; 56 (bits 0..7: the arguments that are per thread; EVERY_THREAD 256),
  ;; STEP_LEFT 31 -> 124, STEP_WORDS 16 -> 64 bytes; the claim word: tag
  ;; above bit 22, front bits 11..21, back bits 0..10.

  ;; The arguments of the step whose line is at $at as thread $thread runs
  ;; it: the line's own (at + 16); or, for a step with per-thread arguments
  ;; (STEP_FLAGS bits 0..7) on a thread other than the caller, a copy at
  ;; $own (the thread's line for it) with thread x STEP_THREAD_BYTES added
  ;; to those arguments (pool_walker.ts, "Every-thread steps").
  (func $argsOf (param $at i32) (param $thread i32) (param $own i32) (result i32)
    (local $mask i32) (local $shift i32) (local $i i32) (local $v i32)
    (local.set $mask (i32.and (i32.load offset=56 (local.get $at)) (i32.const 255)))
    (if (i32.or (i32.eqz (local.get $mask)) (i32.eqz (local.get $thread)))
      (then (return (i32.add (local.get $at) (i32.const 16)))))
    (local.set $shift (i32.mul (local.get $thread) (i32.load offset=52 (local.get $at))))
    (loop $copy
      (local.set $v (i32.load offset=16 (i32.add (local.get $at) (i32.shl (local.get $i) (i32.const 2)))))
      (if (i32.and (local.get $mask) (i32.shl (i32.const 1) (local.get $i)))
        (then (local.set $v (i32.add (local.get $v) (local.get $shift)))))
      (i32.store (i32.add (local.get $own) (i32.shl (local.get $i) (i32.const 2))) (local.get $v))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $copy (i32.lt_u (local.get $i) (i32.const 8))))
    (local.get $own))

  ;; pool_ops.ts's RUN_ROWS_SOURCE, case for case: rows [row0, row1) of op with
  ;; the arguments at a (int32 words), on thread `thread` (0: the caller)
  (func $runRows (param $op i32) (param $a i32) (param $row0 i32) (param $row1 i32) (param $thread i32)
    (local $h i32) (local $r i32) (local $stride i32)
    (if (i32.le_s (local.get $row1) (local.get $row0)) (then (return)))
    (block $default
      (block $quantize
        (block $q8Add
          (block $f32Add
            (block $qkvRope
              (block $norm
                (block $q8Pick
                  (block $f32Pick
                    (block $q8Gated
                      (block $swiglu
                        (block $sums
                          (block $attend
                            (block $q8
                              (block $f32
                                (br_table $f32 $q8 $default $attend $sums $swiglu $q8Gated $f32Pick $q8Pick $norm $qkvRope $f32Add $q8Add $quantize $default
                                  (local.get $op)))
                              ;; F32
                              (call $productF32 (i32.load (local.get $a)) (i32.load offset=4 (local.get $a)) (i32.load offset=8 (local.get $a))
                                (local.get $row0) (local.get $row1)
                                (i32.load offset=12 (local.get $a)) (i32.load offset=16 (local.get $a)) (i32.load offset=20 (local.get $a)))
                              (return))
                            ;; Q8
                            (call $productQ8 (i32.load (local.get $a)) (i32.load offset=4 (local.get $a)) (i32.load offset=8 (local.get $a))
                              (i32.load offset=12 (local.get $a)) (local.get $row0) (local.get $row1)
                              (i32.load offset=16 (local.get $a)) (i32.load offset=20 (local.get $a)) (i32.load offset=24 (local.get $a)))
                            (return))
                          ;; Attend: the thread's own scores
                          (call $attendRows (i32.load (local.get $a)) (local.get $row0) (local.get $row1)
                            (i32.load offset=4 (local.get $a)) (i32.load offset=8 (local.get $a)) (i32.load offset=12 (local.get $a))
                            (i32.load offset=16 (local.get $a))
                            (i32.add (i32.load offset=20 (local.get $a)) (i32.mul (local.get $thread) (i32.load offset=24 (local.get $a)))))
                          (return))
                        ;; SumsOfExps
                        (call $sumsOfExps (i32.load (local.get $a)) (local.get $row0) (local.get $row1)
                          (i32.load offset=4 (local.get $a)) (i32.load offset=8 (local.get $a)))
                        (return))
                      ;; Swiglu
                      (call $swigluRange (i32.load (local.get $a)) (local.get $row0) (local.get $row1)
                        (i32.load offset=4 (local.get $a)) (i32.load offset=8 (local.get $a)))
                      (return))
                    ;; Q8Gated (pool_ops.ts GATED_SCRATCH_FLOATS)
                    (local.set $h (i32.load offset=24 (local.get $a)))
                    (call $productQ8 (i32.load (local.get $a)) (i32.load offset=4 (local.get $a)) (i32.load offset=8 (local.get $a))
                      (i32.add (i32.load offset=12 (local.get $a)) (i32.shl (i32.add (local.get $h) (local.get $row0)) (i32.const 2)))
                      (local.get $row0) (local.get $row1) (i32.load offset=16 (local.get $a)) (i32.const 1) (i32.shl (local.get $h) (i32.const 1)))
                    (call $productQ8 (i32.load (local.get $a)) (i32.load offset=4 (local.get $a)) (i32.load offset=8 (local.get $a))
                      (i32.add (i32.load offset=12 (local.get $a)) (i32.shl (local.get $row1) (i32.const 2)))
                      (i32.add (local.get $h) (local.get $row0)) (i32.add (local.get $h) (local.get $row1))
                      (i32.load offset=16 (local.get $a)) (i32.const 1) (i32.shl (local.get $h) (i32.const 1)))
                    (call $swigluRange
                      (i32.add (i32.load offset=12 (local.get $a))
                        (i32.shl (i32.add (local.get $h) (i32.shl (local.get $row0) (i32.const 1))) (i32.const 2)))
                      (i32.const 0) (i32.const 1) (i32.sub (local.get $row1) (local.get $row0))
                      (i32.add (i32.load offset=20 (local.get $a)) (i32.shl (local.get $row0) (i32.const 2))))
                    (return))
                  ;; F32Pick
                  (call $productF32 (i32.load (local.get $a)) (i32.load offset=4 (local.get $a)) (i32.load offset=8 (local.get $a))
                    (local.get $row0) (local.get $row1)
                    (i32.load offset=12 (local.get $a)) (i32.load offset=16 (local.get $a)) (i32.load offset=20 (local.get $a)))
                  (call $pickRows (i32.load offset=8 (local.get $a)) (local.get $row0) (local.get $row1) (i32.load offset=24 (local.get $a)) (i32.const 16))
                  (return))
                ;; Q8Pick
                (call $productQ8 (i32.load (local.get $a)) (i32.load offset=4 (local.get $a)) (i32.load offset=8 (local.get $a))
                  (i32.load offset=12 (local.get $a)) (local.get $row0) (local.get $row1)
                  (i32.load offset=16 (local.get $a)) (i32.load offset=20 (local.get $a)) (i32.load offset=24 (local.get $a)))
                (call $pickRows (i32.load offset=12 (local.get $a)) (local.get $row0) (local.get $row1) (i32.load offset=28 (local.get $a)) (i32.const 4))
                (return))
              ;; NormOperand, then (xq not 0) quantizeX16 of the rows (xd: a float per 32 of a row's stride)
              (call $normOperand (i32.load (local.get $a)) (i32.load offset=4 (local.get $a)) (i32.load offset=8 (local.get $a))
                (i32.load offset=12 (local.get $a)) (i32.load offset=16 (local.get $a)) (i32.load offset=20 (local.get $a))
                (local.get $row0) (local.get $row1))
              (if (i32.ne (i32.load offset=24 (local.get $a)) (i32.const 0))
                (then
                  (local.set $stride (i32.load offset=16 (local.get $a)))
                  (call $quantizeX16
                    (i32.add (i32.load offset=20 (local.get $a)) (i32.mul (i32.shl (local.get $stride) (i32.const 2)) (local.get $row0)))
                    (i32.mul (local.get $stride) (i32.sub (local.get $row1) (local.get $row0)))
                    (i32.add (i32.load offset=24 (local.get $a)) (i32.mul (i32.shl (local.get $stride) (i32.const 1)) (local.get $row0)))
                    (i32.add (i32.load offset=28 (local.get $a)) (i32.mul (i32.div_s (local.get $stride) (i32.const 8)) (local.get $row0))))))
              (return))
            ;; QkvRope: a record a row, a[1] bytes apart
            (local.set $r (local.get $row0))
            (loop $rows
              (call $qkvRope (i32.add (i32.load (local.get $a)) (i32.mul (local.get $r) (i32.load offset=4 (local.get $a)))))
              (local.set $r (i32.add (local.get $r) (i32.const 1)))
              (br_if $rows (i32.lt_s (local.get $r) (local.get $row1))))
            (return))
          ;; F32Add
          (call $productF32 (i32.load (local.get $a)) (i32.load offset=4 (local.get $a)) (i32.load offset=8 (local.get $a))
            (local.get $row0) (local.get $row1)
            (i32.load offset=12 (local.get $a)) (i32.load offset=16 (local.get $a)) (i32.load offset=20 (local.get $a)))
          (call $addInto
            (i32.add (i32.load offset=24 (local.get $a)) (i32.shl (local.get $row0) (i32.const 2)))
            (i32.add (i32.load offset=8 (local.get $a)) (i32.shl (local.get $row0) (i32.const 2)))
            (i32.sub (local.get $row1) (local.get $row0)))
          (return))
        ;; Q8Add
        (call $productQ8 (i32.load (local.get $a)) (i32.load offset=4 (local.get $a)) (i32.load offset=8 (local.get $a))
          (i32.load offset=12 (local.get $a)) (local.get $row0) (local.get $row1)
          (i32.load offset=16 (local.get $a)) (i32.load offset=20 (local.get $a)) (i32.load offset=24 (local.get $a)))
        (call $addInto
          (i32.add (i32.load offset=28 (local.get $a)) (i32.shl (local.get $row0) (i32.const 2)))
          (i32.add (i32.load offset=12 (local.get $a)) (i32.shl (local.get $row0) (i32.const 2)))
          (i32.sub (local.get $row1) (local.get $row0)))
        (return))
      ;; Quantize: x, n, q, d; rows n floats apart
      (local.set $stride (i32.load offset=4 (local.get $a)))
      (call $quantizeX16
        (i32.add (i32.load (local.get $a)) (i32.mul (i32.shl (local.get $stride) (i32.const 2)) (local.get $row0)))
        (i32.mul (local.get $stride) (i32.sub (local.get $row1) (local.get $row0)))
        (i32.add (i32.load offset=8 (local.get $a)) (i32.mul (i32.shl (local.get $stride) (i32.const 1)) (local.get $row0)))
        (i32.add (i32.load offset=12 (local.get $a)) (i32.mul (i32.div_s (local.get $stride) (i32.const 8)) (local.get $row0))))
      (return))
    ;; no such op: a trap, which the thread's JavaScript counts as a failed unit
    (unreachable))

  ;; Before a run opens (pool.ts WorkerPool.runProgram): each step's LEFT word (tag |
  ;; its units; a caller step's 1) and claim word (tag | 0 | its units), from
  ;; the step's op word and units word (an every-thread step's: 0), plain stores
  (func (export "arm") (param $program i32) (param $tagBits i32) (param $steps i32)
    (local $at i32) (local $end i32) (local $units i32)
    (local.set $at (local.get $program))
    (local.set $end (i32.add (local.get $program) (i32.shl (local.get $steps) (i32.const 6))))
    (block $armed
      (loop $steps
        (br_if $armed (i32.ge_u (local.get $at) (local.get $end)))
        (local.set $units (i32.load offset=48 (local.get $at)))
        (i32.store offset=124 (local.get $at)
          (i32.or (local.get $tagBits)
            (select (i32.const 1) (local.get $units) (i32.eq (i32.load offset=4 (local.get $at)) (i32.const -1)))))
        (i32.store (local.get $at) (i32.or (local.get $tagBits) (local.get $units)))
        (local.set $at (i32.add (local.get $at) (i32.const 64)))
        (br $steps))))

  ;; A worker after a job (pool_worker.ts's loop): GENERATION (word 0) once
  ;; it is not $seen, or after $spinMs of loads (the clock every 64)
  (func (export "watch") (param $ctrl i32) (param $seen i32) (param $spinMs f64) (result i32)
    (local $generation i32) (local $i i32) (local $until f64)
    (local.set $until (f64.add (call $now) (local.get $spinMs)))
    (local.set $i (i32.const 1))
    (loop $spin
      (local.set $generation (i32.atomic.load (local.get $ctrl)))
      (if (i32.ne (local.get $generation) (local.get $seen)) (then (return (local.get $generation))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $spin (i32.or (i32.ne (i32.and (local.get $i) (i32.const 63)) (i32.const 0))
                           (f64.le (call $now) (local.get $until)))))
    (local.get $generation))

  ;; n finished units of the step whose LEFT word is at $left: wakes the
  ;; threads asleep at its barrier when they were the last (pool_worker.ts finish)
  (func $finish (param $ctrl i32) (param $left i32) (param $tag i32) (param $n i32)
    (if (i32.and
          (i32.eq (i32.atomic.rmw.sub (local.get $left) (local.get $n))
                  (i32.or (i32.shl (local.get $tag) (i32.const 22)) (local.get $n)))
          (i32.ne (i32.atomic.load offset=44 (local.get $ctrl)) (i32.const 0)))
      (then (drop (memory.atomic.notify (local.get $left) (i32.const -1))))))

  ;; A step's barrier: until the LEFT word at $left is
  ;; tag | 0 (1), or holds another tag, or STOP is set (0: the run is over).
  ;; Spins for $spinMs at most, then sleeps ($timeout ns; -1: until woken),
  ;; woken by the last finish.
  (func $barrier (param $ctrl i32) (param $left i32) (param $tag i32) (param $spinMs f64) (param $timeout i64) (result i32)
    (local $done i32) (local $v i32) (local $i i32) (local $until f64)
    (local.set $done (i32.shl (local.get $tag) (i32.const 22)))
    (local.set $v (i32.atomic.load (local.get $left)))
    (if (i32.eq (local.get $v) (local.get $done)) (then (return (i32.const 1))))
    (if (f64.gt (local.get $spinMs) (f64.const 0))
      (then
        (local.set $until (f64.add (call $now) (local.get $spinMs)))
        (local.set $i (i32.const 1))
        (block $spun
          (loop $spin
            (br_if $spun (i32.eq (local.get $v) (local.get $done)))
            (if (i32.ne (i32.shr_u (local.get $v) (i32.const 22)) (local.get $tag)) (then (return (i32.const 0))))
            (if (i32.eqz (i32.and (local.get $i) (i32.const 63)))
              (then (br_if $spun (f64.gt (call $now) (local.get $until)))))
            (local.set $v (i32.atomic.load (local.get $left)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $spin)))))
    (block $passed
      (loop $sleep
        (br_if $passed (i32.eq (local.get $v) (local.get $done)))
        (if (i32.ne (i32.shr_u (local.get $v) (i32.const 22)) (local.get $tag)) (then (return (i32.const 0))))
        ;; STOP: the pool disposed or broken (every round: a sleep ends after $timeout at most)
        (if (i32.atomic.load offset=32 (local.get $ctrl)) (then (return (i32.const 0))))
        (drop (i32.atomic.rmw.add offset=44 (local.get $ctrl) (i32.const 1)))
        (local.set $v (i32.atomic.load (local.get $left)))
        (if (i32.and (i32.ne (local.get $v) (local.get $done))
                     (i32.eq (i32.shr_u (local.get $v) (i32.const 22)) (local.get $tag)))
          (then
            ;; (2: timed out)
            (if (i32.eq (memory.atomic.wait32 (local.get $left) (local.get $v) (local.get $timeout)) (i32.const 2))
              (then (call $slept)))))
        (drop (i32.atomic.rmw.sub offset=44 (local.get $ctrl) (i32.const 1)))
        (local.set $v (i32.atomic.load (local.get $left)))
        (br $sleep)))
    (i32.const 1))

  ;; After a claim of step $s > 0 whose line is at $at: until the steps
  ;; before it are done (pool_walker.ts, "Programs"). The last step before $s
  ;; whose LEFT word starts above 0 in a run (a caller step, or an op step
  ;; of units: a step of none starts done, and says nothing of those before
  ;; it) is done, LEFT = tag | 0; and so, each of its units having waited
  ;; so too, are all before it. A walker that passed the barriers (all but a
  ;; stale one) finds it so at the first load (the step before's LEFT lies
  ;; in step s's line, just read; its op and units words in the line before). Otherwise it sleeps as
  ;; at a barrier (AT_BARRIER: the last finish wakes it), never returning
  ;; early: the claim holds units of the open run, which cannot close
  ;; before they are counted, and which the caller walks to step $s. (Except
  ;; for STOP: the pool broken, FAILED set before it, so the claim is
  ;; counted and not run; or disposed: see STOP above.)
  (func $afterSteps (param $ctrl i32) (param $at i32) (param $s i32) (param $tag i32) (param $timeout i64)
    (local $done i32) (local $v i32)
    ;; the last step before $s that starts with units left (none: $s = 0)
    (block $found
      (loop $back
        (local.set $s (i32.sub (local.get $s) (i32.const 1)))
        (local.set $at (i32.sub (local.get $at) (i32.const 64)))
        (br_if $found (i32.or (i32.eq (i32.load offset=4 (local.get $at)) (i32.const -1))
                              (i32.ne (i32.load offset=48 (local.get $at)) (i32.const 0))))
        (br_if $back (i32.gt_s (local.get $s) (i32.const 0)))
        (return)))
    (local.set $done (i32.shl (local.get $tag) (i32.const 22)))
    (block $passed
      (loop $sleep
        (local.set $v (i32.atomic.load offset=124 (local.get $at)))
        (br_if $passed (i32.eq (local.get $v) (local.get $done)))
        (br_if $passed (i32.atomic.load offset=32 (local.get $ctrl)))
        (drop (i32.atomic.rmw.add offset=44 (local.get $ctrl) (i32.const 1)))
        (local.set $v (i32.atomic.load offset=124 (local.get $at)))
        (if (i32.ne (local.get $v) (local.get $done))
          (then (drop (memory.atomic.wait32 offset=124 (local.get $at) (local.get $v) (local.get $timeout)))))
        (drop (i32.atomic.rmw.sub offset=44 (local.get $ctrl) (i32.const 1)))
        (br $sleep))))

  ;; Walks steps [from, steps) of the run `tag` whose first step's line is at
  ;; $program: claims units of each (thread 0, the caller: from the front, and
  ;; it runs the caller steps; a worker: from the back), runs them (not once
  ;; FAILED is set: then only counted), counts them, waits at the step's
  ;; barrier. An every-thread step (STEP_FLAGS & 256) it passes without a
  ;; claim or a barrier, and runs it whole (on its own copy: $argsOf) just
  ;; before the units of its first claim of the step after. Returns 1 once
  ;; the last step is done; 0 (a worker) when a step's words hold another
  ;; tag. $threads: the pool's (claimUnits); $spinMs, $timeout: the
  ;; barrier's. $times (not 0: benchmarks, WorkerPool.programTimes): per op
  ;; step two float64 at $times + 16 s, to which the walk adds its ms in its
  ;; own claims (from the step before's barrier on: an every-thread step's
  ;; run in the claims of the step after) and at the step's barrier. $own:
  ;; this thread's 32 bytes for a step's per-thread arguments (its own line).
  (func (export "walk")
    (param $ctrl i32) (param $program i32) (param $tag i32) (param $steps i32) (param $from i32)
    (param $thread i32) (param $threads i32) (param $spinMs f64) (param $timeout i64) (param $times i32) (param $own i32) (result i32)
    (local $s i32) (local $at i32) (local $word i32) (local $front i32) (local $back i32)
    (local $left i32) (local $take i32) (local $guide i32) (local $size i32) (local $rows i32)
    (local $clock f64) (local $claimed f64) (local $passed f64) (local $t i32) (local $first i32) (local $before i32)
    (global.set $step (local.get $from))
    (global.set $take (i32.const 0))
    (if (local.get $times) (then (local.set $clock (call $now))))
    (local.set $guide (i32.shl (local.get $threads) (i32.const 1)))
    (local.set $s (local.get $from))
    (local.set $at (i32.add (local.get $program) (i32.shl (local.get $from) (i32.const 6))))
    (block $walked
      (loop $steps
        (br_if $walked (i32.ge_s (local.get $s) (local.get $steps)))
        (global.set $step (local.get $s))
        (local.set $first (i32.const 1))
        (block $next
        ;; an every-thread step: run in the claims of the step after
        (br_if $next (i32.and (i32.load offset=56 (local.get $at)) (i32.const 256)))
        (if (i32.and (i32.eqz (local.get $thread)) (i32.eq (i32.load offset=4 (local.get $at)) (i32.const -1)))
          (then
            ;; a caller step, on the caller
            (if (i32.eqz (i32.atomic.load offset=16 (local.get $ctrl))) (then (call $callerStep (local.get $s))))
            ;; (the clock before the finish: a fault after it would leave the step
            ;; counted, and the walk, going on from it, would count it again)
            (if (local.get $times) (then (local.set $clock (call $now))))
            ;; (its own finish passed the barrier)
            (call $finish (local.get $ctrl) (i32.add (local.get $at) (i32.const 124)) (local.get $tag) (i32.const 1)))
          (else
            (block $claimed
              (loop $claim
                (local.set $word (i32.atomic.load (local.get $at)))
                (if (i32.ne (i32.shr_u (local.get $word) (i32.const 22)) (local.get $tag)) (then (return (i32.const 0))))
                (local.set $front (i32.and (i32.shr_u (local.get $word) (i32.const 11)) (i32.const 2047)))
                (local.set $back (i32.and (local.get $word) (i32.const 2047)))
                (local.set $left (i32.sub (local.get $back) (local.get $front)))
                (br_if $claimed (i32.le_s (local.get $left) (i32.const 0)))
                (local.set $take (i32.div_u (i32.add (local.get $left) (i32.sub (local.get $guide) (i32.const 1))) (local.get $guide)))
                (if (i32.eqz (local.get $thread))
                  (then
                    (br_if $claim (i32.ne (i32.atomic.rmw.cmpxchg (local.get $at) (local.get $word)
                                            (i32.add (local.get $word) (i32.shl (local.get $take) (i32.const 11))))
                                          (local.get $word)))
                    (local.set $back (i32.add (local.get $front) (local.get $take))))
                  (else
                    (br_if $claim (i32.ne (i32.atomic.rmw.cmpxchg (local.get $at) (local.get $word)
                                            (i32.sub (local.get $word) (local.get $take)))
                                          (local.get $word)))
                    (local.set $front (i32.sub (local.get $back) (local.get $take)))))
                ;; held from here to its finish (a fault in between counts it)
                (global.set $take (local.get $take))
                ;; units [front, back) of step s > 0: first until the steps
                ;; before s are done (a stale walker's claim can come while the
                ;; run is at an earlier step: pool_walker.ts, "Programs"), then its
                ;; descriptor, read after the claim
                (if (i32.gt_s (local.get $s) (i32.const 0))
                  (then (call $afterSteps (local.get $ctrl) (local.get $at) (local.get $s) (local.get $tag) (local.get $timeout))))
                (if (i32.eqz (i32.atomic.load offset=16 (local.get $ctrl)))
                  (then
                    ;; this walk's first claim of step s: the every-thread step
                    ;; before it first, whole, on this thread's copy (its
                    ;; words read now, after the claim and the wait: the run's)
                    (if (local.get $first)
                      (then
                        (local.set $first (i32.const 0))
                        (local.set $before (i32.sub (local.get $at) (i32.const 64)))
                        (if (i32.gt_s (local.get $s) (i32.const 0))
                          (then
                            (if (i32.and (i32.load offset=56 (local.get $before)) (i32.const 256))
                              (then
                                (call $runRows (i32.load offset=4 (local.get $before))
                                  (call $argsOf (local.get $before) (local.get $thread) (local.get $own))
                                  (i32.const 0) (i32.load offset=12 (local.get $before)) (local.get $thread))))))))
                    (local.set $size (i32.load offset=8 (local.get $at)))
                    (local.set $rows (i32.load offset=12 (local.get $at)))
                    (local.set $back (i32.mul (local.get $back) (local.get $size)))
                    (call $runRows (i32.load offset=4 (local.get $at)) (call $argsOf (local.get $at) (local.get $thread) (local.get $own))
                      (i32.mul (local.get $front) (local.get $size))
                      (select (local.get $rows) (local.get $back) (i32.lt_s (local.get $rows) (local.get $back)))
                      (local.get $thread))))
                (call $finish (local.get $ctrl) (i32.add (local.get $at) (i32.const 124)) (local.get $tag) (local.get $take))
                (global.set $take (i32.const 0))
                (br $claim)))
            (if (local.get $times) (then (local.set $claimed (call $now))))
            (if (i32.eqz (call $barrier (local.get $ctrl) (i32.add (local.get $at) (i32.const 124)) (local.get $tag) (local.get $spinMs) (local.get $timeout)))
              (then (return (i32.const 0))))
            (if (local.get $times)
              (then
                (local.set $passed (call $now))
                (local.set $t (i32.add (local.get $times) (i32.shl (local.get $s) (i32.const 4))))
                (f64.store (local.get $t) (f64.add (f64.load (local.get $t)) (f64.sub (local.get $claimed) (local.get $clock))))
                (f64.store offset=8 (local.get $t) (f64.add (f64.load offset=8 (local.get $t)) (f64.sub (local.get $passed) (local.get $claimed))))
                (local.set $clock (local.get $passed)))))))
        (local.set $s (i32.add (local.get $s) (i32.const 1)))
        (local.set $at (i32.add (local.get $at) (i32.const 64)))
        (br $steps)))
    (i32.const 1))
)
