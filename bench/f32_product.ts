// One float32 weight product at a time on one thread: this project's SIMD
// loop (kernels/simd/products.wat productF32, the loop the pool's threads
// run) against run.c's matmul, built as its Makefile's runomp builds it
// (gcc -Ofast -march=native -fopenmp; OMP_NUM_THREADS=1), for one token (decode)
// and the 15M shape's products. The engines alternate round by round in one
// run, so drift of the machine's load hits both alike.
//
// Each product reads its weights from memory, as in a decode step (a 15M
// step reads 61 MB, more than the 32 MB L3): every shape is cycled through
// copies of its matrix spanning --span MB, and `step` runs a whole 15M
// step's products (6 layers' qkv, out, gate|up, down, then the classifier)
// in order. run.c's harness is its matmul function as the peer's run.c has
// it (cut out of --peer at run time), built into a temporary folder with a
// small timing main (HARNESS below):
//
//   gcc -Ofast -march=native -fopenmp -o matmul_bench harness.c -lm
//
// --variant FILE.wat measures another build of products.wat (its
// productF32) in the same rounds, after checking that it gives the same bits
// as the shipped one on every shape: an A/B of a change to the loop before
// it is shipped (`--variant kernels/simd/products.wat` is an A/A).
//
// --threads N runs ours through the worker pool (a shape's products as one
// pool program, as the decode program runs them, and as pooledProduct calls)
// and as a static split without it, and run.c's matmul with
// OMP_NUM_THREADS=N.
//
// --file-weights adds run.c's matmul on weights read through a read-only
// mmap of a file, as runomp reads its checkpoint. Here (ext4, THP madvise)
// the page cache maps such a file in 2 MB folios (FilePmdMapped), where
// anonymous memory that does not ask for them (madvise) has 4 KB pages:
// run.c's aligned_alloc, and ours with --small-pages. A 15M step's 61 MB
// then costs some 15,000 TLB misses (nested page walks in this VM) instead
// of about 30. Measured before our memories asked for 2 MB pages (2
// threads, step): run.c on anonymous memory 1602 µs, from the file 1113,
// ours (program) 1691. Our memories ask as the library's do
// (kernels/huge_pages.ts) unless --small-pages.
import { execFileSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs, markdownTable, median, recordResult, runBench } from './common.js';
import type { WorkerPool as Pool } from '../kernels/pool.js';
import type { PoolProgram as Program } from '../kernels/pool_program.js';
import type { PooledMatrix } from '../kernels/split_products.js';

const HELP = `bench f32_product: one float32 product on one thread (or --threads N), ours (products.wat productF32) against run.c's matmul (gcc -Ofast -march=native), alternating

  node dist/bench/f32_product.js [--shapes step,864x288,288x288,1536x288,288x768,32000x288] [--rounds 7] [--span 64]
      [--tokens 1] [--threads 1] [--units LIST] [--file-weights] [--small-pages] [--variant FILE.wat] [--peer PATH] [--record]

  --shapes LIST    products ROWSxCOLS (outputs x inputs) and 'step' (a 15M decode step's 25 products in order)
  --rounds N       rounds, the engines alternating in each (default 7); medians are reported
  --span MB        each shape cycles through copies of its matrix spanning this many MB, so that
                   its weights come from memory as in decode (default 64: one copy of the step, 61 MB,
                   as decode reads it; the L3 here is 32 MB)
  --tokens N       tokens a product (default 1, decode); run.c's matmul takes one, so with N > 1 it is not run
  --threads N      with N > 1: ours through the worker pool (kernels/pool.ts, the caller and N - 1 workers: a
                   shape's products as one pool program, as the decode program runs them, and as pooledProduct
                   calls), as a static split without the pool, and run.c's matmul with OMP_NUM_THREADS=N (default 1)
  --units LIST     with --threads N > 1, more program engines: units of these bytes (e.g. 16384,131072)
  --file-weights   also run.c's matmul reading its weights through a read-only mmap of a file, as runomp reads
                   its checkpoint: the page cache can map a file in 2 MB folios, where anonymous memory that does
                   not ask for them (run.c's aligned_alloc) has 4 KB pages here (THP: madvise)
  --small-pages    our memories (this bench's and the pool's) on 4 KB pages: not advised to take 2 MB pages as the
                   library's are (kernels/huge_pages.ts)
  --variant FILE   also measure the productF32 of this .wat (checked bit-identical to the shipped loop first);
                   with --threads N > 1 as a static split beside the shipped loop's
  --peer PATH      run.c (default ../shared/peers/llama2c/run.c from the repository); without gcc or run.c, ours alone
  --record         append the table to bench/RESULTS.md
  --help           this text`;
// The 15M shape's decode step (dim 288, hidden 768, vocab 32000, 6 layers), as the pool holds it: rows x cols
const STEP_15M: [number, number][] = [
  ...(Array.from({ length: 6 }, () => [
    [864, 288], // q|k|v
    [288, 288], // out
    [1536, 288], // gate|up
    [288, 768], // down
  ]).flat() as [number, number][]),
  [32000, 288], // classifier
];

// Every flag's value read and checked here, before tfjs or a pool loads: --help and a bad value answer at once
// (--variant's file is read and assembled in main, before any work).
const cli = benchArgs(HELP);
const rounds = cli.count('rounds', 7, 1, 100);
const spanMB = cli.count('span', 64, 1, 1024);
const tokens = cli.count('tokens', 1, 1, 32);
const threads = cli.count('threads', 1, 1, 64);
const filePages = cli.has('file-weights');
const smallPages = cli.has('small-pages');
const unitList = cli.value('units', '');
const unitSizes = unitList === '' ? [] : unitList.split(',').map(Number);
if (!unitSizes.every((u) => Number.isInteger(u) && u >= 1 && u <= 2 ** 30))
  cli.fail(`--units: expected bytes (whole numbers, comma-separated), got '${unitList}'`);
if (unitSizes.length > 0 && threads === 1) cli.fail('--units: with --threads 2 or more (the pool programs)');
const shapes: Shape[] = cli
  .value('shapes', 'step,864x288,288x288,1536x288,288x768,32000x288')
  .split(',')
  .map((s) => {
    if (s === 'step') return { name: 'step (15M)', products: STEP_15M };
    const m = /^(\d+)x(\d+)$/.exec(s);
    if (m === null || !(Number(m[1]) >= 1 && Number(m[1]) <= 32000 && Number(m[2]) >= 1 && Number(m[2]) <= 32000 && Number(m[1]) * Number(m[2]) <= 2 ** 26))
      return cli.fail(`--shapes: expected ROWSxCOLS (each 1..32000, at most 2^26 weights) or step, got '${s}'`);
    return { name: s, products: [[Number(m[1]), Number(m[2])]] };
  });
const peer = resolve(cli.value('peer', fileURLToPath(new URL('../../../shared/peers/llama2c/run.c', import.meta.url))));
const { assembleWat } = await import('../scripts/assemble_wasm.js');
const { WASM_BASE64 } = await import('../kernels/simd/products.wasm.js');
const { adviseHugePages } = await import('../kernels/huge_pages.js');
const { WorkerPool } = await import('../kernels/pool.js');
const { UNIT_BYTES } = await import('../kernels/pool_control.js');
const { PoolOp } = await import('../kernels/pool_ops.js');
const { PoolProgram } = await import('../kernels/pool_program.js');
const { allocMatrix, matrixBytes, pooledProduct } = await import('../kernels/split_products.js');

/** A timing main around run.c's matmul (MATMUL is replaced by the function's text). */
const HARNESS = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
MATMUL
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
/* argv: span bytes, the largest shape's bytes, then shapes "ROWSxCOLS" or "step"; prints a line per shape: its name, ns a product.
   With WEIGHTS_FILE set, the weights are written to that file and read through a read-only mmap of it, as runomp reads its
   checkpoint (the page cache may map it in 2 MB folios); else they lie in anonymous memory (aligned_alloc: 4 KB pages,
   as this project's WebAssembly memory). */
int main(int argc, char** argv) {
  size_t span = strtoull(argv[1], 0, 10), largest = strtoull(argv[2], 0, 10);
  size_t floats = (span > largest ? span : largest) / 4;
  float* w = aligned_alloc(64, floats * 4);
  for (size_t i = 0; i < floats; i++) w[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
  const char* file = getenv("WEIGHTS_FILE");
  if (file != 0 && *file != 0) {
    FILE* f = fopen(file, "wb");
    if (f == 0 || fwrite(w, 4, floats, f) != floats || fclose(f) != 0) { fprintf(stderr, "cannot write %s\\n", file); return 1; }
    free(w);
    int fd = open(file, O_RDONLY);
    w = fd < 0 ? MAP_FAILED : mmap(0, floats * 4, PROT_READ, MAP_PRIVATE, fd, 0);
    if (w == MAP_FAILED) { fprintf(stderr, "cannot map %s\\n", file); return 1; }
  }
  float* x = aligned_alloc(64, 32000 * 4);
  float* out = aligned_alloc(64, 32000 * 4);
  for (int i = 0; i < 32000; i++) x[i] = (float)(i % 17) / 17.0f - 0.5f;
  int step[25][2];
  for (int l = 0; l < 6; l++) {
    int s[4][2] = {{864, 288}, {288, 288}, {1536, 288}, {288, 768}};
    memcpy(step[4 * l], s, sizeof s);
  }
  step[24][0] = 32000; step[24][1] = 288;
  for (int a = 3; a < argc; a++) {
    int isStep = strcmp(argv[a], "step") == 0;
    int rows = 0, cols = 0;
    if (!isStep) sscanf(argv[a], "%dx%d", &rows, &cols);
    size_t size = isStep ? 0 : (size_t)rows * cols;
    if (isStep) for (int i = 0; i < 25; i++) size += (size_t)step[i][0] * step[i][1];
    size_t copies = span / 4 / size; if (copies < 1) copies = 1;
    /* as many products as read about 1 GB of weights (a warm pass through every copy first) */
    size_t passes = (1u << 28) / (size * copies) + 1;
    double best = 0;
    for (int timed = 0; timed < 2; timed++) {
      double t0 = now();
      size_t n = 0;
      for (size_t p = 0; p < (timed ? passes : 1); p++)
        for (size_t c = 0; c < copies; c++) {
          float* m = w + c * size;
          if (!isStep) { matmul(out, x, m, cols, rows); n++; continue; }
          for (int i = 0; i < 25; i++) { matmul(out, x, m, step[i][1], step[i][0]); m += (size_t)step[i][0] * step[i][1]; }
          n++;
        }
      best = (now() - t0) / n;
    }
    printf("%s %.1f %.6f\\n", argv[a], best * 1e9, out[0]);
  }
  return 0;
}
`;

interface Shape {
  name: string;
  /** Its products in order: rows x cols each. */
  products: [number, number][];
}

/** productF32's signature (products.wat). */
type ProductF32 = (w: number, x: number, out: number, row0: number, row1: number, cols: number, tokens: number, outStride: number) => void;

/** Ours: a products module on its own shared memory, every shape's weights there as random floats. */
class WasmEngine {
  readonly productF32: ProductF32;
  constructor(
    readonly name: string,
    bytes: Uint8Array<ArrayBuffer>,
    readonly memory: WebAssembly.Memory,
  ) {
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
    this.productF32 = instance.exports.productF32 as ProductF32;
  }
}

/** Ours on the worker pool: every shape's copies as pooled matrices (random floats), products by pooledProduct. */
class PoolEngine {
  readonly name: string;
  readonly matrices = new Map<Shape, PooledMatrix[][]>();
  private readonly x = new Float32Array(32000).map((_, i) => (i % 17) / 17 - 0.5);
  constructor(
    readonly pool: Pool,
    shapes: Shape[],
    span: number,
  ) {
    this.name = `ours (pool, ${pool.threads} threads)`;
    for (const shape of shapes) {
      const size = shapeBytes(shape);
      const copies = Math.max(1, Math.floor(span / size));
      this.matrices.set(
        shape,
        Array.from({ length: copies }, () =>
          shape.products.map(([rows, cols]) => {
            const m = allocMatrix(pool, 'f32', rows, cols);
            const floats = pool.views().floats;
            for (let i = m.data / 4, end = i + packedBytes(rows, cols) / 4; i < end; i++) floats[i] = ((i * 2654435761) % 2001) / 1000 - 1;
            return m;
          }),
        ),
      );
    }
  }
  /** ns a product (or step) of `shape` (timeCopies). */
  time(shape: Shape, tokens: number): number {
    const copies = this.matrices.get(shape)!;
    return timeCopies(shapeBytes(shape), copies.length, (c) => {
      for (const m of copies[c]!) pooledProduct(m, this.x, tokens);
    });
  }
}

/**
 * Ours on the worker pool as a decode step runs its products: each copy of
 * a shape's products as ONE pool program (kernels/pool_program.ts), a step
 * a product with a barrier after each, cut in units of `unitBytes` (the
 * pool's by default, as the decode program cuts them): the program's
 * claims and barriers without the step's other work.
 */
class ProgramEngine {
  readonly name: string;
  private readonly programs = new Map<Shape, Program[]>();
  constructor(pooled: PoolEngine, shapes: Shape[], tokens: number, unitBytes?: number) {
    const pool = pooled.pool;
    this.name = `ours (program${unitBytes === undefined ? '' : `, units of ${unitBytes} B`}, ${pool.threads} threads)`;
    // x (values as PoolEngine's) and out, in the pool, shared by every step
    const x = pool.alloc(4 * 32000 * tokens);
    const out = pool.alloc(4 * 32000 * tokens);
    pool.views().floats.set(
      new Float32Array(32000 * tokens).map((_, i) => ((i % 32000) % 17) / 17 - 0.5),
      x / 4,
    );
    for (const shape of shapes)
      this.programs.set(
        shape,
        pooled.matrices.get(shape)!.map(
          (copy) =>
            new PoolProgram(
              pool,
              copy.map((m) => ({
                op: PoolOp.F32,
                args: [m.data, x, out, m.stride, tokens, m.rows],
                rows: m.rows,
                weightBytes: tokens * matrixBytes('f32', m.rows, m.cols),
              })),
              unitBytes === undefined ? {} : { unitBytes },
            ),
        ),
      );
  }
  /** ns a program (a step's products) of `shape` (timeCopies). */
  time(shape: Shape): number {
    const programs = this.programs.get(shape)!;
    return timeCopies(shapeBytes(shape), programs.length, (c) => programs[c]!.run());
  }
}

/**
 * Ours with a static split and no pool: each of `threads` threads (the
 * caller and workers of its own, spinning between products) always computes
 * the same share of each product's row groups, as OpenMP's static schedule
 * gives run.c's threads. A bound for the pool's split (kernels/pool.ts:
 * work stealing, a sleeping worker, ...): the loop alone on N threads.
 */
class StaticEngine {
  readonly name: string;
  private readonly control = new Int32Array(new SharedArrayBuffer(64 * 4));
  private readonly workers: Worker[] = [];
  private generation = 0;
  constructor(
    private readonly main: WasmEngine,
    readonly threads: number,
    bytes: Uint8Array,
    loop = 'ours',
  ) {
    this.name = `${loop} (static split, ${threads} threads, no pool)`;
    // control: [0] generation, [1] done, [2..7] w, x, out, rows, cols, tokens; [8] stop
    const source = `
      const { workerData } = require('node:worker_threads');
      const { memory, bytes, control, id, threads } = workerData;
      const f = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports.productF32;
      let seen = 0;
      (() => { for (;;) {
        // spin up to 200 µs for the next product, then sleep (the other engines' runs must have the cores)
        const until = performance.now() + 0.2;
        while (Atomics.load(control, 0) === seen && performance.now() < until);
        while (Atomics.load(control, 0) === seen) {
          if (Atomics.load(control, 8)) return;
          Atomics.wait(control, 0, seen, 100);
        }
        seen = Atomics.load(control, 0);
        const rows = control[5], groups = Math.ceil(rows / 16);
        const r0 = Math.min(rows, Math.ceil((groups * id) / threads) * 16), r1 = Math.min(rows, Math.ceil((groups * (id + 1)) / threads) * 16);
        if (r1 > r0) f(control[2], control[3], control[4], r0, r1, control[6], control[7], rows);
        Atomics.add(control, 1, 1);
      } })();`;
    for (let id = 1; id < threads; id++)
      this.workers.push(
        new Worker(source, { eval: true, workerData: { memory: main.memory, bytes, control: this.control, id, threads } }).on('error', (e) => {
          process.stderr.write(`static split's worker failed: ${e.message}\n`);
          process.exit(1);
        }),
      );
  }
  /** One product, split: the caller's share is the first. */
  product(w: number, rows: number, cols: number, tokens: number): void {
    const c = this.control;
    c[2] = w;
    c[3] = X_AT;
    c[4] = OUT_AT;
    c[5] = rows;
    c[6] = cols;
    c[7] = tokens;
    Atomics.store(c, 1, 0);
    Atomics.store(c, 0, ++this.generation);
    Atomics.notify(c, 0);
    const groups = Math.ceil(rows / 16);
    const r1 = Math.min(rows, Math.ceil(groups / this.threads) * 16);
    this.main.productF32(w, X_AT, OUT_AT, 0, r1, cols, tokens, rows);
    while (Atomics.load(c, 1) !== this.threads - 1);
  }
  /** ns a product (or step) of `shape` (timeCopies). */
  time(shape: Shape, span: number, tokens: number): number {
    const size = shapeBytes(shape);
    return timeCopies(size, Math.max(1, Math.floor(span / size)), (c) => {
      let m = W_AT + c * size;
      for (const [rows, cols] of shape.products) {
        this.product(m, rows, Math.ceil(cols / 32) * 32, tokens);
        m += packedBytes(rows, cols);
      }
    });
  }
  async dispose(): Promise<void> {
    Atomics.store(this.control, 8, 1);
    Atomics.notify(this.control, 0);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Bytes of a packed f32 matrix (rows padded to 16, cols to 32). */
const packedBytes = (rows: number, cols: number) => Math.ceil(rows / 16) * 16 * Math.ceil(cols / 32) * 32 * 4;

const X_AT = 0; // x: up to 32 tokens x 32000 floats
const OUT_AT = 4 * 32 * 32000 * 2; // out: up to 32 tokens x 32000 floats
const W_AT = 2 * OUT_AT;

/** Bytes of a shape's packed matrices: one copy of its products. */
const shapeBytes = (shape: Shape) => shape.products.reduce((s, [r, c]) => s + packedBytes(r, c), 0);

/**
 * ns a pass over one copy of a shape (runCopy(c) runs copy c's products),
 * as every engine is timed: a warm pass through the copies, then about 1 GB
 * of weights.
 */
function timeCopies(size: number, copies: number, runCopy: (c: number) => void): number {
  const passes = Math.floor(2 ** 30 / (size * copies)) + 1;
  let ns = 0;
  for (let timed = 0; timed < 2; timed++) {
    const t0 = process.hrtime.bigint();
    let n = 0;
    for (let p = 0; p < (timed ? passes : 1); p++)
      for (let c = 0; c < copies; c++) {
        runCopy(c);
        n++;
      }
    ns = Number(process.hrtime.bigint() - t0) / n;
  }
  return ns;
}

/** ns a product (or step) of `shape` on a wasm engine (timeCopies). */
function timeWasm(e: WasmEngine, shape: Shape, span: number, tokens: number): number {
  const size = shapeBytes(shape);
  const f = e.productF32;
  return timeCopies(size, Math.max(1, Math.floor(span / size)), (c) => {
    let m = W_AT + c * size;
    for (const [rows, cols] of shape.products) {
      f(m, X_AT, OUT_AT, 0, rows, Math.ceil(cols / 32) * 32, tokens, rows);
      m += packedBytes(rows, cols);
    }
  });
}

/** An engine's name in a ratio's column: ours, pool, static, variant, run.c. */
const short = (name: string) =>
  name.startsWith('run.c')
    ? name.includes('mmapped file')
      ? 'run.c (file)'
      : 'run.c'
    : name.startsWith('variant')
      ? 'variant'
      : name.startsWith('ours (program')
        ? `program${/units of (\d+)/.exec(name)?.[1] ?? ''}`
        : (/^ours \((pool|static)/.exec(name)?.[1] ?? 'ours');

/** The peer's matmul function, cut out of run.c. */
function peerMatmul(runC: string): string {
  const m = /^void matmul\(float\* xout, float\* x, float\* w, int n, int d\) \{\n[\s\S]*?\n\}\n/m.exec(runC);
  if (m === null) throw new Error("run.c: no 'void matmul(float* xout, float* x, float* w, int n, int d)' function found");
  return m[0];
}

async function main(): Promise<void> {
  // the variant read and assembled before any work
  let variant: { name: string; bytes: Uint8Array<ArrayBuffer> } | undefined;
  if (cli.has('variant')) {
    const path = resolve(cli.value('variant', ''));
    let source = '';
    try {
      source = readFileSync(path, 'utf8');
    } catch {
      cli.fail(`--variant: cannot read ${path}`);
    }
    try {
      variant = { name: `variant (${basename(path)})`, bytes: new Uint8Array(await assembleWat(path, source)) };
    } catch (e) {
      cli.fail(`--variant: ${path} does not assemble: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  const span = spanMB * 2 ** 20;
  const largest = Math.max(...shapes.map(shapeBytes));

  // the memory: x, out, then the span of copies (at least one copy of the largest shape), random floats
  const memory = new WebAssembly.Memory({ initial: Math.ceil((W_AT + Math.max(span, largest)) / 65536), maximum: 65536, shared: true });
  // before the first write, as the pool does: 2 MB pages unless --small-pages
  const pages = smallPages ? { hugePages: false, why: '--small-pages' } : adviseHugePages(memory.buffer, 65536 * 65536);
  const floats = new Float32Array(memory.buffer);
  let seed = 1;
  for (let i = 0; i < floats.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    floats[i] = seed / 2 ** 31 - 1;
  }
  const shipped = Buffer.from(WASM_BASE64, 'base64');
  const engines: WasmEngine[] = threads > 1 ? [] : [new WasmEngine('ours (products.wat)', shipped, memory)];
  // every product split as decode splits it (units of UNIT_BYTES), without the pool's watch for busy cores
  // (splitMinBytes 0): the workers spin between products, as in a decode step on a quiet machine
  const pool = threads > 1 ? new WorkerPool(threads, { splitMinBytes: 0, unitBytes: UNIT_BYTES, hugePages: !smallPages }) : undefined;
  const pooled = pool === undefined ? undefined : new PoolEngine(pool, shapes, span);
  const programs = pooled === undefined ? [] : [undefined, ...unitSizes].map((u) => new ProgramEngine(pooled, shapes, tokens, u));
  await pool?.ready();
  const statics = threads > 1 ? new StaticEngine(new WasmEngine('ours', shipped, memory), threads, shipped) : undefined;
  // with N threads, the variant as a static split beside the shipped loop's (the pool runs the shipped loop)
  const variantStatic =
    threads > 1 && variant !== undefined
      ? new StaticEngine(new WasmEngine(variant.name, variant.bytes, memory), threads, variant.bytes, variant.name)
      : undefined;
  if (variant !== undefined) {
    const check = [new WasmEngine('ours', shipped, memory), new WasmEngine(variant.name, variant.bytes, memory)];
    if (threads === 1) engines.push(check[1]!);
    // the same bits as the shipped loop on every shape (and 1..3 tokens) before any timing
    for (const t of new Set([1, 2, 3, tokens]))
      for (const [rows, cols] of new Map(shapes.flatMap((s) => s.products).map(([r, c]) => [`${r}x${c}`, [r, c] as const])).values()) {
        const stride = Math.ceil(cols / 32) * 32;
        const n = t * rows;
        check[0]!.productF32(W_AT, X_AT, OUT_AT, 0, rows, stride, t, rows);
        const want = floats.slice(OUT_AT / 4, OUT_AT / 4 + n);
        floats.fill(NaN, OUT_AT / 4, OUT_AT / 4 + n);
        check[1]!.productF32(W_AT, X_AT, OUT_AT, 0, rows, stride, t, rows);
        const got = floats.subarray(OUT_AT / 4, OUT_AT / 4 + n);
        for (let i = 0; i < n; i++)
          if (!Object.is(got[i], want[i]))
            cli.fail(`--variant: ${rows}x${cols}, ${t} tokens: output ${i} is ${got[i]}, the shipped loop's ${want[i]} (not the same bits)`);
      }
  }

  // run.c's matmul, built as runomp is
  let harness: string | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'streamllm-f32-product-'));
  try {
    if (tokens === 1) {
      try {
        writeFileSync(join(dir, 'harness.c'), HARNESS.replace('MATMUL', peerMatmul(readFileSync(peer, 'utf8'))));
        execFileSync('gcc', ['-Ofast', '-march=native', '-fopenmp', '-o', join(dir, 'matmul_bench'), join(dir, 'harness.c'), '-lm'], { stdio: 'pipe' });
        harness = join(dir, 'matmul_bench');
      } catch (e) {
        process.stderr.write(`run.c's matmul not built (${(e as Error).message.split('\n')[0]}): ours alone\n`);
      }
    }
    const runcName = `run.c matmul (gcc -Ofast -march=native, ${threads} thread${threads > 1 ? 's' : ''})`;
    const runcFileName = `run.c matmul, weights in an mmapped file (as runomp reads its checkpoint), ${threads} thread${threads > 1 ? 's' : ''}`;
    const names = [
      ...programs.map((p) => p.name),
      ...(pooled === undefined ? [] : [pooled.name]),
      ...(statics === undefined ? [] : [statics.name]),
      ...(variantStatic === undefined ? [] : [variantStatic.name]),
      ...engines.map((e) => e.name),
      ...(harness === undefined ? [] : [runcName, ...(filePages ? [runcFileName] : [])]),
    ];
    const ns = new Map(names.map((n) => [n, shapes.map(() => [] as number[])]));
    const loadBefore = loadavg()[0]!;
    for (let round = 0; round < rounds; round++) {
      // the engines in turn, each starting first in some rounds
      const order = names.map((_, i) => names[(i + round) % names.length]!);
      for (const name of order) {
        const engine = engines.find((e) => e.name === name);
        const program = programs.find((p) => p.name === name);
        if (program !== undefined) shapes.forEach((s, i) => ns.get(name)![i]!.push(program.time(s)));
        else if (name === statics?.name) shapes.forEach((s, i) => ns.get(name)![i]!.push(statics.time(s, span, tokens)));
        else if (name === variantStatic?.name) shapes.forEach((s, i) => ns.get(name)![i]!.push(variantStatic.time(s, span, tokens)));
        else if (name === pooled?.name) shapes.forEach((s, i) => ns.get(name)![i]!.push(pooled.time(s, tokens)));
        else if (engine !== undefined) shapes.forEach((s, i) => ns.get(name)![i]!.push(timeWasm(engine, s, span, tokens)));
        else {
          const args = [String(span), String(largest), ...shapes.map((s) => (s.products === STEP_15M ? 'step' : s.name))];
          const weightsFile = name === runcFileName ? join(dir, 'weights.bin') : '';
          const lines = execFileSync(harness!, args, { env: { ...process.env, OMP_NUM_THREADS: String(threads), WEIGHTS_FILE: weightsFile }, encoding: 'utf8' })
            .trim()
            .split('\n');
          lines.forEach((l, i) => ns.get(name)![i]!.push(Number(l.split(' ')[1])));
        }
      }
    }
    const header = [
      'shape (rows x cols)',
      'MB',
      ...names.map((n) => `${n}: µs (GB/s)`),
      ...names.slice(1).map((n) => `${short(names[0]!)} time / ${short(n)}`),
    ];
    const rows = shapes.map((s, i) => {
      const mb = s.products.reduce((sum, [r, c]) => sum + r * c * 4, 0) / 1e6;
      const med = names.map((n) => median(ns.get(n)![i]!));
      return [
        s.name,
        mb.toFixed(2),
        ...med.map((m) => `${(m / 1000).toFixed(1)} (${((mb * 1e6) / m).toFixed(1)})`),
        ...med.slice(1).map((m) => (med[0]! / m).toFixed(2)),
      ];
    });
    const body =
      `One product of ${tokens} token(s) on ${threads} thread(s), weights from memory (each shape cycling through ${spanMB} MB of copies); ` +
      `medians of ${rounds} rounds, engines alternating; GB/s of float32 weights (unpadded); ratio > 1: faster than ours. ` +
      `Our weights on ${pages.hugePages ? '2 MB pages (asked for)' : `4 KB pages (${pages.why})`}. ` +
      `Load average ${loadBefore.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after` +
      (pool !== undefined && pool.calmPeriods > 0
        ? `; the pool found the cores busy ${pool.calmPeriods} times (its workers' spin stopped a while: kernels/pool_busy.ts)`
        : '') +
      '.\n\n' +
      markdownTable(header, rows);
    process.stdout.write(body + '\n');
    recordResult(
      'One float32 product against run.c matmul (bench/f32_product.ts)',
      `node dist/bench/f32_product.js ${process.argv.slice(2).join(' ')}`.trim(),
      body,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await pool?.dispose();
    await statics?.dispose();
    await variantStatic?.dispose();
  }
}

await runBench(main);
