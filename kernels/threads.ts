// How many threads the weight products use by default, on its own so that
// the CLI's --help can say it without loading the worker pool and its wasm.
import { availableParallelism } from 'node:os';

/** Threads to use by default: every core the OS gives this process. */
export function defaultThreads(): number {
  return availableParallelism();
}
