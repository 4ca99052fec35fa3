// Moved to kernels/paths.ts, where every reach into tfjs internals is; this
// name stays for code written against it.
export { float32View, hasDirectMemory } from './paths.js';
