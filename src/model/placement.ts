// Where a model's weight products run, as the library and the CLI ask for it:
// the worker pool (this project's SIMD loops on `threads` threads, float32 or
// q8 weights) or the backend's own tfjs kernels. placementOf is the one place
// that decides it from the options and the backend: loadModel (load.ts) and
// placeModel (pooled.ts) call it with the API's words; `eval`, `generate`,
// `reproduce` and `attn` (src/cli/placement.ts) with their flags'. No tfjs here (the backend comes in by name), so that the CLI's
// flags can list the choices without loading it.
import { defaultThreads } from '../../kernels/threads.js';
import { WEIGHT_FORMATS, type WeightFormat } from '../../kernels/weight_format.js';
import { ArgumentError } from '../errors.js';
import type { Placement } from './pooled.js';

/** Where the weight products run: `pool`, this project's loops in the worker pool; `tfjs`, the backend's own kernels. */
export const PRODUCTS = ['pool', 'tfjs'] as const;
export type Products = (typeof PRODUCTS)[number];

/** The most threads a pool takes (the CLI's --threads bound too). */
export const MAX_THREADS = 1024;

/**
 * How to place a model's weight products (loadModel's options). Give any of
 * the three to run them in the worker pool, the rest as the CLI's defaults
 * (every core, f32, the pool on the wasm and cpu backends); give none for the
 * plain tfjs path, the only one that trains and exports. A model in the pool
 * holds worker threads: `await disposeModel(model)` stops them.
 */
export interface PlacementOptions {
  /** Threads for the pool's products, the calling one included (default: every core, os.availableParallelism(); 1: the calling thread alone, no worker threads; on tensorflow, which runs its own, unused). */
  threads?: number;
  /** The weight matrices as f32, or q8 (blocks of 32 int8 with a float32 scale: 1.125 bytes a weight; perplexity measured within 1% of f32: README, Backends; the pool only). Default f32. */
  weights?: WeightFormat;
  /**
   * pool (default on wasm and cpu): the matrices in the worker pool; tfjs
   * (the default on tensorflow, which runs its own threads): the backend's
   * kernels, float32 on one thread, the path the pool is tested against.
   */
  products?: Products;
}

/** How messages name an option with its value: the API's words (`weights 'q8'`), or the CLI's flags (`--weights q8`). */
export type OptionWords = (name: keyof PlacementOptions, value: string | number) => string;

/** A value as a message shows it: a string quoted, so that '2' is not read as 2. */
const shown = (value: unknown) => (typeof value === 'string' ? `'${value}'` : String(value));

export const API_WORDS: OptionWords = (name, value) => `${name} ${shown(value)}`;

const OPTION_NAMES: readonly (keyof PlacementOptions)[] = ['threads', 'weights', 'products'];

/** Each option's value checked on its own (the CLI's flag parser checks the same before): an ArgumentError naming it. */
function checkOptions(options: PlacementOptions): void {
  const { threads, weights, products } = options;
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= MAX_THREADS))
    throw new ArgumentError('threads', `expected an integer in 1..${MAX_THREADS}, got ${shown(threads)}`);
  const choice = (name: string, value: unknown, choices: readonly string[]) => {
    if (value !== undefined && !choices.includes(value as string)) throw new ArgumentError(name, `expected one of ${choices.join(', ')}, got ${shown(value)}`);
  };
  choice('weights', weights, WEIGHT_FORMATS);
  choice('products', products, PRODUCTS);
}

/**
 * The pool placement the options ask for on `backend`, or undefined for the
 * backend's own products: with none of the options given, with products
 * 'tfjs', and on tensorflow. A combination that cannot run (q8 or the pool on
 * tensorflow, q8 or several threads with tfjs's products) is an
 * ArgumentError naming the option in `words`.
 */
export function placementOf(options: PlacementOptions, backend: string, words: OptionWords = API_WORDS): Placement | undefined {
  checkOptions(options);
  const { threads, weights, products } = options;
  if (threads === undefined && weights === undefined && products === undefined) return undefined;
  if (backend === 'tensorflow') {
    if (weights === 'q8') throw new ArgumentError(words('weights', 'q8'), 'runs on the wasm and cpu backends only, not on tensorflow');
    if (products === 'pool') throw new ArgumentError(words('products', 'pool'), 'runs on the wasm and cpu backends only, not on tensorflow');
    return undefined;
  }
  if (products === 'tfjs') {
    if (weights === 'q8')
      throw new ArgumentError(words('products', 'tfjs'), `float32 only (${words('weights', 'q8')} runs in the pool), got ${words('weights', 'q8')}`);
    if (threads !== undefined && threads > 1)
      throw new ArgumentError(words('products', 'tfjs'), `one thread (the ${backend} backend's kernels run on one in Node), got ${words('threads', threads)}`);
    return undefined;
  }
  // The pool for both formats and any thread count, one included: its loops read packed weights, on one thread
  // faster than the tfjs path's ops, with the same bits on wasm (float32 warm: the tfjs path 1.32x the pool's time a
  // token, RESULTS 12-01 01:39; 2.0x from a process's ninth token; docs/speed.md, 'One thread is the pool').
  // Every core by default whatever the model's size: a default of one thread below some weight bytes was measured
  // and left out (bench/RESULTS.md, 'Tiny models', 12-01 02:05-02:10). On the 0.6 and 1.0 MiB models two threads
  // score blocks 1.17x and 1.46x faster than one; the 260K shape decodes in 0.765x one thread's time while the
  // second core is free (1.7x while another process holds it: the load, not the size); only the attention-only zoo
  // models decode slower on two in a short run: with their decode program (layers without a feed-forward), two threads
  // still run `generate --steps 1000` at 0.70x one's tok/s (4 fresh processes each alternating, load 1.3-1.4), the
  // two-thread path's slower warm-up, not the barriers: warm they decode backcopy-attn in 0.75-0.86x one thread's
  // time a token, and --steps 20000 1.02-1.15x as fast; a decode step kept on one thread below a size was measured and
  // left out (docs/speed.md 'Tiny models', session 26).
  return { threads: threads ?? defaultThreads(), weights: weights ?? 'f32' };
}

/** Refuse an options object with a key that is no option (a misspelt `thread` would otherwise load the plain path). */
export function checkOptionNames(options: object, others: readonly string[]): void {
  if (typeof options !== 'object' || options === null)
    throw new ArgumentError('options', `expected an object, got ${options === null ? 'null' : typeof options}`);
  const known = [...OPTION_NAMES, ...others];
  const unknown = Object.keys(options).find((k) => !known.includes(k));
  if (unknown !== undefined) throw new ArgumentError('options', `unknown option '${unknown}' (expected ${known.join(', ')})`);
}
