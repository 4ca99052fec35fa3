// Memory limits, checked before any allocation whose size comes from the
// user (a window, a sequence length, a checkpoint's shape), so that a size
// too large is one clear line instead of a RangeError from deep inside
// tfjs, a wasm "memory access out of bounds", or gigabytes taken for
// nothing.
import * as tf from '@tensorflow/tfjs';
import { constants } from 'node:buffer';
import { totalmem } from 'node:os';
import { ResourceError } from './errors.js';

/** The wasm backend's heap stops at 4 GiB (wasm32). */
export const WASM_HEAP_BYTES = 4294901760;

/** The largest ArrayBuffer Node allocates: one tensor on the wasm and cpu backends. */
export const MAX_ARRAY_BYTES: number = constants.MAX_LENGTH;

export function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}

/** What the active backend can hold in all: the wasm heap, else this machine's memory. */
export function memoryLimit(): { bytes: number; what: string } {
  if (tf.getBackend() === 'wasm') return { bytes: WASM_HEAP_BYTES, what: `the wasm backend's ${gib(WASM_HEAP_BYTES)} heap` };
  const bytes = totalmem();
  return { bytes, what: `this machine's ${gib(bytes)} of memory` };
}

/**
 * Throws ResourceError when `bytes` more (the largest single tensor of them
 * `largestTensorBytes`) cannot be allocated next to the tensors that exist.
 * `what` starts the message: it names the flag, field or policy the size
 * comes from.
 */
export function checkFits(what: string, bytes: number, largestTensorBytes = bytes): void {
  if (largestTensorBytes > MAX_ARRAY_BYTES) {
    throw new ResourceError(`${what}: needs a tensor of ${gib(largestTensorBytes)}, more than the largest array Node allocates (${gib(MAX_ARRAY_BYTES)})`);
  }
  const limit = memoryLimit();
  const inUse = tf.memory().numBytes;
  if (bytes + inUse > limit.bytes) {
    const held = inUse > 0 ? ` with ${gib(inUse)} already in use` : '';
    throw new ResourceError(`${what}: needs ${gib(bytes)}, more than ${limit.what} holds${held}`);
  }
}

/** As checkFits, for JavaScript arrays outside the backend: the largest array and this machine's memory. */
export function checkHostFits(what: string, bytes: number, largestArrayBytes = bytes): void {
  if (largestArrayBytes > MAX_ARRAY_BYTES) {
    throw new ResourceError(`${what}: needs an array of ${gib(largestArrayBytes)}, more than the largest array Node allocates (${gib(MAX_ARRAY_BYTES)})`);
  }
  if (bytes > totalmem()) throw new ResourceError(`${what}: needs ${gib(bytes)}, more than this machine's ${gib(totalmem())} of memory`);
}
