// src/checkpoint/safetensors.ts: float16/bfloat16 rounding by hand-computed
// values, chunked reads, sharded sets, and every malformed file we refuse.
import * as tf from '@tensorflow/tfjs';
import { readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { halfValue, toBfloat16Bits, toFloat16Bits } from '../src/checkpoint/float16.js';
import { readSafetensorsHeader, SafetensorsReader, writeSafetensors } from '../src/checkpoint/safetensors.js';
import { FileFormatError } from '../src/errors.js';
import { loadModel } from '../src/model/load.js';
import { disposeModel } from '../src/model/weights.js';
import { denseLogits, initTestBackend, maxAbsDiff } from './helpers.js';
import { llama2cToHf, llamaConfigJson, randomLlama2c, tempDir, toWrite, writeHfDir } from './tiny_checkpoints.js';

await initTestBackend();

// Values and their nearest 16-bit neighbours, worked out by hand.
const cases: { x: number; f16: number; bf16: number }[] = [
  { x: 1, f16: 1, bf16: 1 },
  { x: -2.5, f16: -2.5, bf16: -2.5 },
  { x: 1 / 3, f16: 0.333251953125, bf16: 0.333984375 }, // f16 0x3555, bf16 0x3eab
  { x: 0.1, f16: 0.0999755859375, bf16: 0.10009765625 }, // f16 0x2e66, bf16 0x3dcd
  { x: 2049, f16: 2048, bf16: 2048 }, // f16: a tie, to even; bf16 spacing 16 at 2048
  { x: 2051, f16: 2052, bf16: 2048 }, // f16: a tie, to even (2052 has an even mantissa)
  { x: 1 + 2 ** -8, f16: 1 + 2 ** -8, bf16: 1 }, // bf16: a tie, to even
  { x: 1 + 3 * 2 ** -8, f16: 1 + 3 * 2 ** -8, bf16: 1 + 4 * 2 ** -8 }, // bf16: a tie, to even (up)
  { x: 65504, f16: 65504, bf16: 65536 }, // the largest half
  { x: 65520, f16: Infinity, bf16: 65536 }, // a tie between 65504 and 2^16: to even, which overflows
  { x: 7e-8, f16: 2 ** -24, bf16: 6.984919309616089e-8 }, // f16 subnormal 1; bf16 keeps 8 significant bits
  { x: 1e-8, f16: 0, bf16: 1.0011717677116394e-8 }, // below half the least f16 subnormal
  { x: 3 * 2 ** -25, f16: 2 ** -23, bf16: 3 * 2 ** -25 }, // f16 subnormal tie 1.5 -> 2 (even)
  { x: 1e30, f16: Infinity, bf16: 1.0002555517425873e30 },
  { x: -0, f16: -0, bf16: -0 },
];

t.test('F16 and BF16 files widen to the hand-rounded values', async (t) => {
  const dir = tempDir();
  const values = Float32Array.from(cases, (c) => c.x);
  for (const dtype of ['F16', 'BF16'] as const) {
    const file = join(dir, `${dtype}.safetensors`);
    writeSafetensors(file, [{ name: 'v', shape: [values.length], values }], { dtype });
    const header = readSafetensorsHeader(file);
    t.equal(header.tensors.get('v')!.dtype, dtype);
    t.equal(header.tensors.get('v')!.byteLength, 2 * values.length);
    const got = SafetensorsReader.open(file).read('v');
    cases.forEach((c, i) => t.equal(Object.is(got[i], -0) ? -0 : got[i], dtype === 'F16' ? c.f16 : c.bf16, `${dtype}(${c.x})`));
    t.ok(Object.is(got[cases.length - 1], -0), `${dtype} keeps the sign of zero`);
  }
  t.equal(toFloat16Bits(1 / 3), 0x3555);
  t.equal(toBfloat16Bits(1 / 3), 0x3eab);
  t.ok(Number.isNaN(halfValue('F16', toFloat16Bits(NaN))));
  t.ok(Number.isNaN(halfValue('BF16', toBfloat16Bits(NaN))));
  t.equal(halfValue('F16', 0x7bff), 65504);
  t.equal(halfValue('F16', 0x0001), 2 ** -24);
  t.equal(halfValue('BF16', 0xff80), -Infinity);
});

t.test('every F16 bit pattern survives widening and narrowing', async (t) => {
  let bad = 0;
  for (let h = 0; h < 65536; h++) {
    const v = halfValue('F16', h);
    if (Number.isNaN(v)) continue;
    if (toFloat16Bits(v) !== h) bad++;
  }
  t.equal(bad, 0);
});

t.test('chunked reads reassemble the tensor, in every dtype', async (t) => {
  const dir = tempDir();
  const values = Float32Array.from({ length: 7 * 5 * 3 }, (_, i) => (i % 17) - 8 + i / 128);
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    const file = join(dir, `${dtype}.safetensors`);
    writeSafetensors(
      file,
      [
        { name: 'pad', shape: [3], values: new Float32Array(3) },
        { name: 'x', shape: [7, 5, 3], values },
      ],
      { dtype },
    );
    const reader = SafetensorsReader.open(file);
    const whole = reader.read('x', [7, 5, 3]);
    const rows: number[] = [];
    const pieces = new Float32Array(whole.length);
    reader.readRows(
      'x',
      undefined,
      (row, v) => {
        rows.push(row);
        pieces.set(v, row * 15);
      },
      2 * 15 * 4,
    ); // two rows a chunk
    t.same(rows, [0, 2, 4, 6]);
    t.same(Array.from(pieces), Array.from(whole));
    if (dtype === 'F32') t.same(Array.from(whole), Array.from(values));
  }
});

/** A hand-made file: the header JSON as given, then `data` bytes. */
function rawFile(file: string, header: unknown, dataBytes: number, lengthOverride?: bigint): string {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
  writeFileSync(file, Buffer.concat([length, json, Buffer.alloc(dataBytes)]));
  return file;
}

t.test('malformed files are refused with one line naming the file and the problem', async (t) => {
  const dir = tempDir();
  const f = (name: string) => join(dir, name);
  const entry = (dtype: string, shape: number[], begin: number, end: number) => ({ dtype, shape, data_offsets: [begin, end] });
  const refuse = (file: string, pattern: RegExp, what: string) => {
    let error: unknown;
    try {
      readSafetensorsHeader(file);
    } catch (e) {
      error = e;
    }
    t.ok(error instanceof FileFormatError, `${what}: FileFormatError`);
    t.match((error as Error).message, pattern, what);
    t.ok((error as Error).message.startsWith(file), `${what}: names the file`);
    t.notOk((error as Error).message.includes('\n'), `${what}: one line`);
  };

  // A well-formed file, then broken in every way.
  const good = f('good.safetensors');
  writeSafetensors(good, [
    { name: 'a', shape: [2, 3], values: new Float32Array(6) },
    { name: 'b', shape: [4], values: new Float32Array(4) },
  ]);
  t.equal(readSafetensorsHeader(good).tensors.size, 2);
  const truncated = f('truncated.safetensors');
  writeFileSync(truncated, readFileSync(good));
  truncateSync(truncated, readFileSync(good).length - 1);
  refuse(truncated, /tensor 'b': data_offsets \[24, 40\] run past the data \(39 bytes\): truncated file\?/, 'truncated file');
  writeFileSync(f('tiny'), Buffer.alloc(5));
  refuse(f('tiny'), /too small for a safetensors file \(5 bytes\)/, 'shorter than the length field');
  refuse(rawFile(f('huge-header'), {}, 0, 2n ** 40n), /header length 1099511627776 is impossible/, 'header length past the file');
  refuse(rawFile(f('zero-header'), '', 16, 0n), /header length 0 is impossible/, 'empty header');
  refuse(rawFile(f('not-json'), '{"a": ', 0), /header is not valid UTF-8 JSON/, 'header not JSON');
  refuse(rawFile(f('array'), [1, 2], 0), /header is not a JSON object/, 'header an array');
  refuse(rawFile(f('outside'), { a: entry('F32', [4], 0, 16) }, 8), /data_offsets \[0, 16\] run past the data \(8 bytes\)/, 'offsets outside');
  refuse(rawFile(f('reversed'), { a: entry('F32', [0], 8, 4) }, 8), /data_offsets must be \[begin, end\] with 0 <= begin <= end/, 'end before begin');
  refuse(rawFile(f('negative'), { a: entry('F32', [1], -4, 0) }, 8), /data_offsets must be/, 'negative offset');
  refuse(rawFile(f('overlap'), { a: entry('F32', [3], 0, 12), b: entry('F32', [2], 8, 16) }, 16), /tensors 'a' and 'b' overlap/, 'overlapping tensors');
  refuse(rawFile(f('dtype'), { a: entry('F12', [2], 0, 4) }, 4), /tensor 'a': unknown dtype "F12" \(the format defines BOOL, /, 'unknown dtype');
  refuse(rawFile(f('size'), { a: entry('BF16', [2, 3], 0, 24) }, 24), /shape \[2, 3\] of BF16 needs 12 bytes, data_offsets give 24/, 'shape/size mismatch');
  refuse(rawFile(f('shape'), { a: entry('F32', [2, -1], 0, 8) }, 8), /shape must be a list of non-negative integers/, 'negative dimension');
  refuse(rawFile(f('entry'), { a: 'F32' }, 8), /tensor 'a': entry is not an object/, 'entry not an object');
  refuse(rawFile(f('meta'), { __metadata__: { format: 1 } }, 0), /__metadata__ must map strings to strings/, 'bad metadata');
  refuse(f('absent'), /cannot open: ENOENT/, 'no such file');

  // Tensors of other dtypes may sit in a file (NeoX keeps BOOL masks) but are not read as floats.
  const mixed = rawFile(f('mixed'), { mask: entry('BOOL', [4], 0, 4), w: entry('F32', [1], 4, 8) }, 8);
  const reader = SafetensorsReader.open(mixed);
  t.same(Array.from(reader.read('w')), [0]);
  t.throws(() => reader.read('mask'), /tensor 'mask' is BOOL; supported: F32, F16, BF16/);
  t.throws(() => reader.read('nope'), /missing tensor 'nope'/);
  t.throws(() => reader.read('w', [2]), /tensor 'w' has shape \[1\], expected \[2\]/);
  t.throws(() => SafetensorsReader.open(dir), /no model\.safetensors or model\.safetensors\.index\.json in this directory/);
});

t.test('a failed write leaves no file behind', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'x.safetensors');
  t.throws(() => writeSafetensors(file, [{ name: 'a', shape: [3], values: () => new Float32Array(2) }]), /'a' has 2 values, shape \[3\] needs 3/);
  t.same(readdirSync(dir), [], 'neither the file nor its temporary');
});

t.test('sharded checkpoints load like a single file', async (t) => {
  const before = tf.memory().numTensors;
  const shape = { dim: 16, hiddenDim: 24, layers: 3, heads: 4, kvHeads: 2, vocabSize: 21, maxSeqLen: 16, sharedClassifier: false };
  const tensors = llama2cToHf(randomLlama2c(shape, 'shards'));
  const single = tempDir();
  writeHfDir(single, llamaConfigJson(shape), tensors);
  const sharded = tempDir();
  writeFileSync(join(sharded, 'config.json'), JSON.stringify(llamaConfigJson(shape)));
  // Three shards, each tensor in shard (index mod 3): the reader must follow the index.
  const all = toWrite(tensors);
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < 3; s++) {
    const name = `model-0000${s + 1}-of-00003.safetensors`;
    const mine = all.filter((_, i) => i % 3 === s);
    writeSafetensors(join(sharded, name), mine, { dtype: 'BF16' });
    for (const tensor of mine) weightMap[tensor.name] = name;
  }
  const index = join(sharded, 'model.safetensors.index.json');
  writeFileSync(index, JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  const reader = SafetensorsReader.open(sharded);
  t.equal(reader.source, index);
  t.equal(reader.tensors.size, all.length);
  // The same model in BF16 as one file.
  writeHfDir(single, llamaConfigJson(shape), tensors, 'BF16');
  const a = loadModel(single);
  const b = loadModel(sharded);
  t.equal(maxAbsDiff(denseLogits(a, [1, 2, 3, 4, 5]), denseLogits(b, [1, 2, 3, 4, 5])), 0, 'identical logits');
  disposeModel(a);
  disposeModel(b);

  // A shard that lacks a tensor the index lists; an index that is not one.
  const shard1 = join(sharded, 'model-00001-of-00003.safetensors');
  writeSafetensors(shard1, all.filter((_, i) => i % 3 === 0).slice(1), { dtype: 'BF16' });
  t.throws(
    () => SafetensorsReader.open(sharded),
    new RegExp(`model-00001-of-00003\\.safetensors: tensor '${all[0]!.name.replace(/\./g, '\\.')}', listed in model\\.safetensors\\.index\\.json, is missing`),
  );
  writeFileSync(index, JSON.stringify({ weight_map: { x: 1 } }));
  t.throws(() => SafetensorsReader.open(sharded), /weight_map must be an object mapping tensor names to shard file names/);
  writeFileSync(index, JSON.stringify({ weight_map: { x: '../elsewhere.safetensors' } }));
  t.throws(() => SafetensorsReader.open(sharded), /must be a file name in the same directory/);
  writeFileSync(index, '{');
  t.throws(() => SafetensorsReader.open(sharded), /model\.safetensors\.index\.json: not valid JSON/);
  t.equal(tf.memory().numTensors, before, 'no tensor leak');
});
