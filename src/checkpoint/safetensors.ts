// safetensors (Hugging Face's tensor file format), read and written.
//
//   u64 LE   N, the header's length in bytes
//   N bytes  JSON: { name: { dtype, shape, data_offsets: [begin, end] }, ..., "__metadata__": {str: str} }
//   rest     the tensors' bytes, little-endian, row-major; offsets are relative to here
//
// A large model is split into shards named by `model.safetensors.index.json`
// ({"weight_map": {tensor name: shard file}}). Floats are widened to float32
// on read (F32, F16, BF16), and tensors are read piece by piece with plain
// fs reads, so loading never holds a whole file or shard in memory: peak use
// is the float32 model plus one read chunk.
import { closeSync, existsSync, fstatSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FileFormatError } from '../errors.js';
import { type HalfDtype, narrowHalf, widenHalf } from './float16.js';
import { openForReading, readAt, readJsonFile } from '../files.js';
import { writeAll, writeFileAtomic } from '../outputs.js';

/** Bytes per element of every dtype the format defines. */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1, // prettier-ignore
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2, // prettier-ignore
  I32: 4,
  U32: 4,
  F32: 4, // prettier-ignore
  I64: 8,
  U64: 8,
  F64: 8, // prettier-ignore
};

/** The dtypes this reader widens to float32. Others may sit in a file (e.g. NeoX's BOOL mask buffers) but cannot be read. */
export const FLOAT_DTYPES = ['F32', 'F16', 'BF16'] as const;
export type FloatDtype = (typeof FLOAT_DTYPES)[number];

/** The reference implementation refuses headers above 100 MB; so do we, before allocating. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Bytes read at a time: large enough for few syscalls, small next to any real tensor. */
const READ_CHUNK_BYTES = 16 * 1024 * 1024;

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

export interface TensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** The file that holds it. */
  file: string;
  /** Absolute byte offset of its first element in `file`. */
  offset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isOffsetPair(v: unknown): v is [begin: number, end: number] {
  if (!Array.isArray(v) || v.length !== 2) return false;
  const [begin, end]: unknown[] = v;
  return isCount(begin) && isCount(end) && begin <= end;
}

/** Parse and validate one file's header. Every entry is checked against the file's size. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fd = openForReading(file);
  try {
    const fileBytes = fstatSync(fd).size;
    if (fileBytes < 8) throw new FileFormatError(file, `too small for a safetensors file (${fileBytes} bytes)`);
    const lengthBytes = readAt(fd, file, 8, 0);
    const headerLength = Number(lengthBytes.readBigUInt64LE(0));
    if (headerLength < 2 || headerLength > MAX_HEADER_BYTES || headerLength > fileBytes - 8) {
      throw new FileFormatError(
        file,
        `header length ${headerLength} is impossible (expected 2..${Math.min(MAX_HEADER_BYTES, fileBytes - 8)} for a ${fileBytes}-byte file)`,
      );
    }
    const text = new TextDecoder('utf-8', { fatal: true });
    let json: unknown;
    try {
      json = JSON.parse(text.decode(readAt(fd, file, headerLength, 8)));
    } catch (e) {
      throw new FileFormatError(file, `header is not valid UTF-8 JSON (${(e as Error).message})`);
    }
    if (!isPlainObject(json)) throw new FileFormatError(file, 'header is not a JSON object');
    const dataStart = 8 + headerLength;
    const dataBytes = fileBytes - dataStart;
    const tensors = new Map<string, TensorEntry>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(json)) {
      if (name === '__metadata__') {
        if (!isPlainObject(raw) || !Object.values(raw).every((v) => typeof v === 'string')) {
          throw new FileFormatError(file, '__metadata__ must map strings to strings');
        }
        metadata = raw as Record<string, string>;
        continue;
      }
      tensors.set(name, parseEntry(file, name, raw, dataStart, dataBytes));
    }
    // No two tensors may share bytes.
    const byOffset = [...tensors.values()].sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < byOffset.length; i++) {
      const prev = byOffset[i - 1]!;
      const cur = byOffset[i]!;
      if (cur.offset < prev.offset + prev.byteLength) {
        throw new FileFormatError(file, `tensors '${prev.name}' and '${cur.name}' overlap`);
      }
    }
    return { tensors, metadata };
  } finally {
    closeSync(fd);
  }
}

function parseEntry(file: string, name: string, raw: unknown, dataStart: number, dataBytes: number): TensorEntry {
  const where = `tensor '${name}'`;
  if (!isPlainObject(raw)) throw new FileFormatError(file, `${where}: entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = raw;
  if (typeof dtype !== 'string' || DTYPE_BYTES[dtype] === undefined) {
    throw new FileFormatError(file, `${where}: unknown dtype ${JSON.stringify(dtype)} (the format defines ${Object.keys(DTYPE_BYTES).join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw new FileFormatError(file, `${where}: shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  if (!isOffsetPair(offsets)) {
    throw new FileFormatError(file, `${where}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets;
  if (end > dataBytes) {
    throw new FileFormatError(file, `${where}: data_offsets [${begin}, ${end}] run past the data (${dataBytes} bytes): truncated file?`);
  }
  const elements = shape.reduce((a, b) => a * b, 1);
  const expected = elements * DTYPE_BYTES[dtype];
  if (end - begin !== expected) {
    throw new FileFormatError(file, `${where}: shape [${shape.join(', ')}] of ${dtype} needs ${expected} bytes, data_offsets give ${end - begin}`);
  }
  return { name, dtype, shape, file, offset: dataStart + begin, byteLength: end - begin };
}

/** Reads the tensors of one safetensors file or of a sharded set, as float32. */
export class SafetensorsReader {
  private constructor(
    /** What was opened: a file, or the index of a sharded set. */
    readonly source: string,
    readonly tensors: ReadonlyMap<string, TensorEntry>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  /**
   * Open `path`: a .safetensors file, a model.safetensors.index.json, or a
   * directory holding either (the index wins when both exist).
   */
  static open(path: string): SafetensorsReader {
    if (!existsSync(path)) throw new FileFormatError(path, 'no such file or directory');
    if (statSync(path).isDirectory()) {
      const index = join(path, INDEX_FILE);
      if (existsSync(index)) return SafetensorsReader.open(index);
      const single = join(path, SINGLE_FILE);
      if (existsSync(single)) return SafetensorsReader.open(single);
      throw new FileFormatError(path, `no ${SINGLE_FILE} or ${INDEX_FILE} in this directory`);
    }
    if (path.endsWith('.index.json')) return SafetensorsReader.openIndex(path);
    const header = readSafetensorsHeader(path);
    return new SafetensorsReader(path, header.tensors, header.metadata);
  }

  private static openIndex(indexFile: string): SafetensorsReader {
    const json = readJsonFile(indexFile);
    const weightMap = isPlainObject(json) ? json.weight_map : undefined;
    if (!isPlainObject(weightMap) || !Object.values(weightMap).every((v) => typeof v === 'string')) {
      throw new FileFormatError(indexFile, 'weight_map must be an object mapping tensor names to shard file names');
    }
    const headers = new Map<string, SafetensorsHeader>();
    const tensors = new Map<string, TensorEntry>();
    for (const [name, shard] of Object.entries(weightMap as Record<string, string>)) {
      if (shard.includes('/') || shard.includes('\\')) throw new FileFormatError(indexFile, `shard '${shard}' must be a file name in the same directory`);
      let header = headers.get(shard);
      if (header === undefined) {
        header = readSafetensorsHeader(join(dirname(indexFile), shard));
        headers.set(shard, header);
      }
      const entry = header.tensors.get(name);
      if (entry === undefined) throw new FileFormatError(join(dirname(indexFile), shard), `tensor '${name}', listed in ${INDEX_FILE}, is missing`);
      tensors.set(name, entry);
    }
    // A shard's tensor that the index does not list would be silently left out.
    for (const [shard, header] of headers) {
      for (const name of header.tensors.keys()) {
        if (weightMap[name] !== shard) {
          throw new FileFormatError(join(dirname(indexFile), shard), `holds tensor '${name}', which ${INDEX_FILE} does not map to this shard`);
        }
      }
    }
    const metadata = isPlainObject(json) && isPlainObject(json.metadata) ? (json.metadata as Record<string, string>) : {};
    return new SafetensorsReader(indexFile, tensors, metadata);
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** The entry of `name`; with `shape`, also checks the tensor has that shape. */
  entry(name: string, shape?: readonly number[]): TensorEntry {
    const e = this.tensors.get(name);
    if (e === undefined) throw new FileFormatError(this.source, `missing tensor '${name}'`);
    if (shape !== undefined && (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i]))) {
      throw new FileFormatError(e.file, `tensor '${name}' has shape [${e.shape.join(', ')}], expected [${shape.join(', ')}] from the config`);
    }
    if (!(FLOAT_DTYPES as readonly string[]).includes(e.dtype)) {
      throw new FileFormatError(e.file, `tensor '${name}' is ${e.dtype}; supported: ${FLOAT_DTYPES.join(', ')}`);
    }
    return e;
  }

  /**
   * Stream a tensor as float32, a block of whole rows (along the first axis)
   * at a time: visit(firstRow, values) with values [rows, ...shape[1:]].
   * The values array is reused between calls.
   */
  readRows(name: string, shape: readonly number[] | undefined, visit: (firstRow: number, values: Float32Array) => void, chunkBytes = READ_CHUNK_BYTES): void {
    const e = this.entry(name, shape);
    const elementBytes = DTYPE_BYTES[e.dtype]!;
    const rows = e.shape.length === 0 ? 1 : e.shape[0]!;
    const rowElements = e.shape.slice(1).reduce((a, b) => a * b, 1);
    if (rows === 0 || rowElements === 0) return;
    const rowsPerChunk = Math.max(1, Math.min(rows, Math.floor(chunkBytes / (rowElements * 4))));
    // One buffer for float32 values; a half-width read lands in a separate one.
    const values = new Float32Array(rowsPerChunk * rowElements);
    const raw = elementBytes === 4 ? new Uint8Array(values.buffer) : new Uint8Array(rowsPerChunk * rowElements * elementBytes);
    const fd = openForReading(e.file);
    try {
      for (let row = 0; row < rows; row += rowsPerChunk) {
        const n = Math.min(rowsPerChunk, rows - row);
        const bytes = n * rowElements * elementBytes;
        readAt(fd, e.file, bytes, e.offset + row * rowElements * elementBytes, raw.subarray(0, bytes));
        const out = values.subarray(0, n * rowElements);
        if (e.dtype !== 'F32') widenHalf(e.dtype as HalfDtype, new Uint16Array(raw.buffer, 0, n * rowElements), out);
        visit(row, out);
      }
    } finally {
      closeSync(fd);
    }
  }

  /** A whole tensor as float32 (for vectors and small tensors; large ones go through readRows). */
  read(name: string, shape?: readonly number[]): Float32Array {
    const e = this.entry(name, shape);
    const size = e.shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(size);
    const rowElements = e.shape.slice(1).reduce((a, b) => a * b, 1);
    this.readRows(name, shape, (row, values) => out.set(values, row * rowElements));
    return out;
  }
}

export interface TensorToWrite {
  name: string;
  shape: number[];
  /** The values, row-major; a function is called only when the tensor is written, so a writer can hold one at a time. */
  values: Float32Array | (() => Float32Array);
}

export interface WriteOptions {
  /** Storage dtype for every tensor (default F32). */
  dtype?: FloatDtype;
  metadata?: Record<string, string>;
}

/**
 * Write tensors to one safetensors file, in the given order. Written to a
 * temporary name and renamed, so a failure leaves no half-written file.
 */
export function writeSafetensors(file: string, tensors: readonly TensorToWrite[], options: WriteOptions = {}): void {
  const dtype = options.dtype ?? 'F32';
  const elementBytes = DTYPE_BYTES[dtype]!;
  const header: Record<string, unknown> = {};
  if (options.metadata !== undefined) header.__metadata__ = options.metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || header[t.name] !== undefined) throw new Error(`writeSafetensors: duplicate or reserved name '${t.name}'`);
    const bytes = t.shape.reduce((a, b) => a * b, 1) * elementBytes;
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  // The header is padded with spaces to a multiple of 8 bytes, as the
  // reference writer does, so the data starts aligned.
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  writeFileAtomic(file, (fd) => {
    writeAll(fd, length);
    writeAll(fd, json);
    for (const t of tensors) {
      const values = typeof t.values === 'function' ? t.values() : t.values;
      const size = t.shape.reduce((a, b) => a * b, 1);
      if (values.length !== size) throw new Error(`writeSafetensors: '${t.name}' has ${values.length} values, shape [${t.shape.join(', ')}] needs ${size}`);
      if (dtype === 'F32') {
        writeAll(fd, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
      } else {
        const narrow = new Uint16Array(size);
        narrowHalf(dtype, values, narrow);
        writeAll(fd, new Uint8Array(narrow.buffer));
      }
    }
  });
}
