// llama2.c checkpoints (Karpathy's run.c format).
//
// Legacy (version 0): seven int32 (dim, hidden_dim, n_layers, n_heads,
// n_kv_heads, vocab_size, seq_len), then float32 tensors: token_embedding,
// rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq_cis_real,
// freq_cis_imag and, when vocab_size is negative, a separate classifier.
//
// Version 1: a 256-byte header (magic "ak42", int32 version 1, the seven
// int32, a uint8 shared-classifier flag), then float32 rms_att, rms_ffn,
// rms_final, token_embedding, wq, wk, wv, wo, w1, w2, w3 and the classifier
// when not shared.
//
// Matrices are [out, in], row-major. RoPE rotates adjacent pairs.
import { closeSync, fstatSync } from 'node:fs';
import * as fdlibm from '../../kernels/fdlibm.js';
import { FileFormatError, NonFiniteError } from '../errors.js';
import { firstNonFinite } from '../finite.js';
import { openForReading, readAt } from '../files.js';
import { writeAll, writeFileAtomic } from '../outputs.js';

export interface LlamaShape {
  dim: number;
  hiddenDim: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocabSize: number;
  maxSeqLen: number;
  sharedClassifier: boolean;
}

/** The tensors of a llama2.c checkpoint, flat, in the file's layout ([out, in]). */
export interface LlamaTensors {
  shape: LlamaShape;
  tokenEmbedding: Float32Array; // [vocab, dim]
  rmsAtt: Float32Array; // [layers, dim]
  wq: Float32Array; // [layers, dim, dim]
  wk: Float32Array; // [layers, kvDim, dim]
  wv: Float32Array; // [layers, kvDim, dim]
  wo: Float32Array; // [layers, dim, dim]
  rmsFfn: Float32Array; // [layers, dim]
  w1: Float32Array; // [layers, hidden, dim]
  w2: Float32Array; // [layers, dim, hidden]
  w3: Float32Array; // [layers, hidden, dim]
  rmsFinal: Float32Array; // [dim]
  classifier?: Float32Array; // [vocab, dim], when not shared
}

const MAGIC = 0x616b3432; // "ak42" read as a little-endian uint32
const V1_HEADER_BYTES = 256;

export type TensorName = Exclude<keyof LlamaTensors, 'shape'>;

/** run.c's names for the tensors, for messages. */
const TENSOR_NAMES: Record<TensorName, string> = {
  tokenEmbedding: 'token_embedding_table',
  rmsAtt: 'rms_att_weight',
  wq: 'wq',
  wk: 'wk',
  wv: 'wv',
  wo: 'wo',
  rmsFfn: 'rms_ffn_weight',
  w1: 'w1',
  w2: 'w2',
  w3: 'w3',
  rmsFinal: 'rms_final_weight',
  classifier: 'wcls',
};

/** The weights in the legacy file's order (its RoPE tables, unused, sit before the classifier). */
export const LLAMA2C_TENSOR_ORDER: readonly TensorName[] = [
  'tokenEmbedding',
  'rmsAtt',
  'wq',
  'wk',
  'wv',
  'wo',
  'rmsFfn',
  'w1',
  'w2',
  'w3',
  'rmsFinal',
  'classifier',
];

/** Element count of every tensor of a shape (the classifier's too, shared or not). */
export function tensorSizes(s: LlamaShape): Record<TensorName | 'freqCis', number> {
  const kvDim = (s.dim * s.kvHeads) / s.heads;
  const L = s.layers;
  return {
    tokenEmbedding: s.vocabSize * s.dim,
    rmsAtt: L * s.dim,
    wq: L * s.dim * s.dim,
    wk: L * kvDim * s.dim,
    wv: L * kvDim * s.dim,
    wo: L * s.dim * s.dim,
    rmsFfn: L * s.dim,
    w1: L * s.hiddenDim * s.dim,
    w2: L * s.dim * s.hiddenDim,
    w3: L * s.hiddenDim * s.dim,
    rmsFinal: s.dim,
    freqCis: s.maxSeqLen * (s.dim / s.heads), // real and imaginary halves together
    classifier: s.vocabSize * s.dim,
  };
}

/** Element counts of every tensor, in the order the given version stores them. */
function layout(s: LlamaShape, version: 0 | 1): [TensorName | 'freqCis', number][] {
  const sizes = tensorSizes(s);
  const order: (TensorName | 'freqCis')[] =
    version === 0
      ? ['tokenEmbedding', 'rmsAtt', 'wq', 'wk', 'wv', 'wo', 'rmsFfn', 'w1', 'w2', 'w3', 'rmsFinal', 'freqCis']
      : ['rmsAtt', 'rmsFfn', 'rmsFinal', 'tokenEmbedding', 'wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'];
  if (!s.sharedClassifier) order.push('classifier');
  return order.map((name) => [name, sizes[name]]);
}

/** Bytes of a legacy (version 0) file of this shape, and of its largest tensor. */
export function llama2cBytes(s: LlamaShape): { file: number; largestTensor: number; weights: number } {
  const sizes = layout(s, 0);
  const weights = sizes.filter(([name]) => name !== 'freqCis').reduce((n, [, size]) => n + 4 * size, 0);
  const largestTensor = Math.max(...sizes.filter(([name]) => name !== 'freqCis').map(([, size]) => 4 * size));
  return { file: 28 + sizes.reduce((n, [, size]) => n + 4 * size, 0), largestTensor, weights };
}

function checkShape(file: string, s: LlamaShape): void {
  const fields: [string, number][] = [
    ['dim', s.dim],
    ['hidden_dim', s.hiddenDim],
    ['n_layers', s.layers],
    ['n_heads', s.heads],
    ['n_kv_heads', s.kvHeads],
    ['vocab_size', s.vocabSize],
    ['seq_len', s.maxSeqLen],
  ];
  for (const [name, v] of fields) {
    if (!(v > 0)) throw new FileFormatError(file, `header field ${name} must be positive, got ${v}`);
  }
  if (s.dim % s.heads !== 0) throw new FileFormatError(file, `n_heads (${s.heads}) does not divide dim (${s.dim})`);
  if (s.heads % s.kvHeads !== 0) throw new FileFormatError(file, `n_kv_heads (${s.kvHeads}) does not divide n_heads (${s.heads})`);
  if ((s.dim / s.heads) % 2 !== 0) throw new FileFormatError(file, `head size ${s.dim / s.heads} must be even for RoPE`);
}

/**
 * A llama2.c checkpoint opened for reading: its shape, validated against the
 * file's size, and any run of a tensor's elements read on demand, so that a
 * model can be built a piece at a time without the whole file in memory.
 */
export interface Llama2cReader {
  shape: LlamaShape;
  /** Elements [start, start + count) of a tensor, flat in the file's layout. */
  read(name: TensorName, start: number, count: number): Float32Array;
  close(): void;
}

/** Open and validate a llama2.c checkpoint (either version). */
export function openLlama2c(file: string): Llama2cReader {
  const fd = openForReading(file);
  try {
    const fileBytes = fstatSync(fd).size;
    if (fileBytes < 28) throw new FileFormatError(file, `too small for a llama2.c checkpoint (${fileBytes} bytes)`);
    const head = readAt(fd, file, Math.min(fileBytes, V1_HEADER_BYTES), 0);
    const version: 0 | 1 = head.readUInt32LE(0) === MAGIC ? 1 : 0;
    if (version === 1) {
      if (fileBytes < V1_HEADER_BYTES) throw new FileFormatError(file, 'truncated version-1 header');
      const v = head.readInt32LE(4);
      if (v !== 1) throw new FileFormatError(file, `unsupported llama2.c format version ${v} (supported: legacy 0, float32 1)`);
    }
    const at = version === 1 ? 8 : 0;
    const int = (i: number) => head.readInt32LE(at + 4 * i);
    const rawVocab = int(5);
    const shape: LlamaShape = {
      dim: int(0),
      hiddenDim: int(1),
      layers: int(2),
      heads: int(3),
      kvHeads: int(4),
      vocabSize: Math.abs(rawVocab),
      maxSeqLen: int(6),
      sharedClassifier: version === 1 ? head.readUInt8(36) === 1 : rawVocab > 0,
    };
    checkShape(file, shape);
    const headerBytes = version === 1 ? V1_HEADER_BYTES : 28;
    // Byte offset and element count of every tensor.
    const where = new Map<TensorName | 'freqCis', [number, number]>();
    let offset = headerBytes;
    for (const [name, size] of layout(shape, version)) {
      where.set(name, [offset, size]);
      offset += 4 * size;
    }
    if (fileBytes !== offset) {
      const what = fileBytes < offset ? 'truncated' : 'oversized';
      throw new FileFormatError(file, `${what}: the header describes ${offset} bytes but the file has ${fileBytes}`);
    }
    return {
      shape,
      read(name, start, count) {
        const [base, size] = where.get(name)!;
        if (start < 0 || start + count > size) throw new RangeError(`${name}: elements [${start}, ${start + count}) outside its ${size}`);
        const buf = readAt(fd, file, 4 * count, base + 4 * start);
        const values = new Float32Array(buf.buffer, buf.byteOffset, count);
        const bad = firstNonFinite(values);
        if (bad >= 0) {
          const element = start + bad;
          const perLayer = name === 'tokenEmbedding' || name === 'rmsFinal' || name === 'classifier' ? undefined : size / shape.layers;
          const where = perLayer === undefined ? `element ${element}` : `layer ${Math.floor(element / perLayer)}, element ${element % perLayer}`;
          throw new NonFiniteError(`${file}: tensor ${TENSOR_NAMES[name]} holds ${String(values[bad])} at ${where}: expected finite weights`);
        }
        return values;
      },
      close: () => closeSync(fd),
    };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Read and validate a whole llama2.c checkpoint (either version). */
export function readLlama2c(file: string): LlamaTensors {
  const reader = openLlama2c(file);
  try {
    const out: Partial<LlamaTensors> = { shape: reader.shape };
    for (const [name, size] of layout(reader.shape, 0)) {
      if (name !== 'freqCis') out[name] = reader.read(name, 0, size);
    }
    return out as LlamaTensors;
  } finally {
    reader.close();
  }
}

/** The reader interface over tensors already in memory. */
export function llama2cTensorsReader(t: LlamaTensors): Llama2cReader {
  return {
    shape: t.shape,
    read: (name, start, count) => t[name]!.subarray(start, start + count),
    close: () => {},
  };
}

/** Elements written at a time when the tensors come from a reader: a model larger than memory is never held whole. */
const ELEMENTS_PER_WRITE = 1 << 22;

/**
 * Write a legacy (version 0) checkpoint, the format llama2.c's run.c reads,
 * from tensors in memory or read piece by piece in file order (a random
 * model drawn as it is written, see randomLlamaReader).
 * Written to a temporary name and renamed, so a failure leaves no half file.
 */
export function writeLlama2c(file: string, t: LlamaTensors | Llama2cReader): void {
  const src = 'read' in t ? t : llama2cTensorsReader(t);
  const s = src.shape;
  checkShape(file, s);
  if (!('read' in t)) {
    for (const [name, size] of layout(s, 0)) {
      if (name === 'freqCis') continue;
      const data = t[name];
      if (data === undefined || data.length !== size) {
        throw new Error(`writeLlama2c: ${name} has ${data?.length ?? 0} values, expected ${size}`);
      }
    }
  }
  const header = Buffer.alloc(28);
  const ints = [s.dim, s.hiddenDim, s.layers, s.heads, s.kvHeads, s.sharedClassifier ? s.vocabSize : -s.vocabSize, s.maxSeqLen];
  ints.forEach((v, i) => header.writeInt32LE(v, 4 * i));
  writeFileAtomic(file, (fd) => {
    writeAll(fd, header);
    for (const [name, size] of layout(s, 0)) {
      if (name === 'freqCis') {
        writeFreqCis(fd, s);
        continue;
      }
      for (let at = 0; at < size; at += ELEMENTS_PER_WRITE) {
        const part = src.read(name, at, Math.min(ELEMENTS_PER_WRITE, size - at));
        writeAll(fd, new Uint8Array(part.buffer, part.byteOffset, part.byteLength));
      }
    }
  });
}

/** Positions of the RoPE tables written at a time: a long seq_len is never held whole. */
const FREQ_POSITIONS_PER_WRITE = 4096;

/** The legacy format's unused RoPE tables, cos then sin, [seq_len, headSize / 2] each (fdlibm's: the same bytes on every Node). */
function writeFreqCis(fd: number, s: LlamaShape): void {
  const headSize = s.dim / s.heads;
  const half = headSize / 2;
  const chunk = new Float32Array(FREQ_POSITIONS_PER_WRITE * half);
  const wavelength = Float64Array.from({ length: half }, (_, i) => fdlibm.pow(10000, (2 * i) / headSize));
  for (const f of [fdlibm.cos, fdlibm.sin]) {
    for (let p0 = 0; p0 < s.maxSeqLen; p0 += FREQ_POSITIONS_PER_WRITE) {
      const n = Math.min(FREQ_POSITIONS_PER_WRITE, s.maxSeqLen - p0);
      for (let p = 0; p < n; p++) {
        for (let i = 0; i < half; i++) chunk[p * half + i] = f((p0 + p) / wavelength[i]!);
      }
      writeAll(fd, new Uint8Array(chunk.buffer, 0, n * half * 4));
    }
  }
}
