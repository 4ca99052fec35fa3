// llama2.c's tokenizer (Karpathy's run.c, exported from Llama 2's
// SentencePiece model): a scored vocabulary, merges by score.
//
// tokenizer.bin: int32 max_token_length, then for each token: float32 score,
// int32 byte length, the piece's bytes (SentencePiece's "▁" already turned
// into a plain space). The file does not store the token count: run.c reads
// as many tokens as the model has; we read to the end of the file and check
// the count against the model when given.
//
// encode() is run.c's encode():
//   1. BOS (id 1) when asked;
//   2. the dummy prefix: the piece " " when the text is not empty;
//   3. each code point's piece, or when the code point is no piece, one byte
//      token "<0xNN>" per UTF-8 byte;
//   4. merge the adjacent pair whose concatenation is a piece with the highest
//      score (leftmost on ties, pieces scoring <= -1e10 never), until none;
//   5. EOS (id 2) when asked.
// Where run.c relies on the Llama 2 vocabulary's layout we check instead:
// run.c takes the " " piece's id unchecked (-1, an invalid id, when there is
// none) and byte b's id as b + 3 (some unrelated piece when the vocabulary has
// no byte tokens). We omit the dummy prefix when " " is not a piece and use
// the id of the piece "<0xNN>", or <unk> (id 0) when there is none; on
// vocabularies with " " and byte tokens, such as Llama 2's, this is run.c.
//
// decode() is run.c's decode(): a piece after BOS loses one leading space,
// "<0xNN>" pieces are the raw byte NN. BOS and EOS are control tokens and
// decode to nothing (SentencePiece's rule; run.c never prints them either),
// so decode(encode(text, {bos: true})) === text.
import { readFileSync } from 'node:fs';
import { FileFormatError, UsageError } from '../errors.js';
import { checkTokenId, checkTokenIds } from '../model/token_ids.js';
import { writeFileAtomic } from '../outputs.js';
import { mergePairs } from './pair_merge.js';
import type { EncodeOptions, StreamDecoder, Tokenizer } from './types.js';
import { decodeAll, Utf8StreamDecoder } from './utf8_stream.js';

const UNK_ID = 0;
const BOS_ID = 1;
const EOS_ID = 2;
/** run.c starts its best score at -1e10: pieces at or below it never merge. */
const NO_MERGE_SCORE = -1e10;
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;
const SPACE = 0x20;

export class Llama2cTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId = BOS_ID;
  readonly eosId = EOS_ID;
  /** run.c always starts with BOS. */
  readonly addsBosByDefault = true;
  /** Piece bytes as a binary ("latin1") string -> the first id with that piece. */
  private readonly idOfPiece = new Map<string, number>();
  /** Binary-string pieces, for building merge candidates. */
  private readonly pieceKeys: string[];
  /** What each id decodes to: byte tokens already turned into their byte. */
  private readonly outputBytes: Uint8Array[];
  /** Id of each byte's fallback token. */
  private readonly byteIds: Int32Array;
  private readonly dummyPrefixId: number | undefined;

  constructor(
    readonly pieces: readonly Uint8Array[],
    readonly scores: Float32Array,
  ) {
    if (pieces.length !== scores.length) throw new UsageError(`Llama2cTokenizer: ${pieces.length} pieces but ${scores.length} scores`);
    if (pieces.length < 3) throw new UsageError(`Llama2cTokenizer: need at least the 3 pieces <unk>, BOS, EOS, got ${pieces.length}`);
    this.vocabSize = pieces.length;
    this.pieceKeys = pieces.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString('latin1'));
    // First id wins on duplicate pieces (run.c's binary search picks either).
    this.pieceKeys.forEach((key, id) => {
      if (!this.idOfPiece.has(key)) this.idOfPiece.set(key, id);
    });
    this.outputBytes = pieces.map((p, id) => {
      if (id === BOS_ID || id === EOS_ID) return new Uint8Array(0);
      const byte = BYTE_PIECE.exec(this.pieceKeys[id]!);
      return byte ? Uint8Array.of(parseInt(byte[1]!, 16)) : p;
    });
    this.byteIds = new Int32Array(256);
    for (let b = 0; b < 256; b++) {
      this.byteIds[b] = this.idOfPiece.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`) ?? UNK_ID;
    }
    this.dummyPrefixId = this.idOfPiece.get(' ');
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids: number[] = [];
    if (options.bos) ids.push(BOS_ID);
    if (text.length > 0 && this.dummyPrefixId !== undefined) ids.push(this.dummyPrefixId);
    // run.c walks UTF-8 bytes and gathers a lead byte with its continuation
    // bytes; for the valid UTF-8 of a JS string that is one code point.
    for (const ch of text) {
      // An ASCII character is its own UTF-8 (and binary-string) form.
      const utf8 = ch.charCodeAt(0) < 0x80 ? undefined : Buffer.from(ch, 'utf8');
      const id = this.idOfPiece.get(utf8 === undefined ? ch : utf8.toString('latin1'));
      if (id !== undefined) ids.push(id);
      else if (utf8 === undefined) ids.push(this.byteIds[ch.charCodeAt(0)]!);
      else for (const b of utf8) ids.push(this.byteIds[b]!);
    }
    // run.c merges over the whole list, BOS included (no piece starts with
    // BOS's piece in practice, but the rule is the rule).
    const merged = mergePairs(ids, (left, right) => {
      const id = this.idOfPiece.get(this.pieceKeys[left]! + this.pieceKeys[right]!);
      if (id === undefined || !(this.scores[id]! > NO_MERGE_SCORE)) return undefined;
      return { rank: -this.scores[id]!, id };
    });
    if (options.eos) merged.push(EOS_ID);
    return merged;
  }

  decode(ids: readonly number[]): string {
    checkTokenIds('ids', ids, this.vocabSize);
    return decodeAll(ids, (id, previousId) => this.bytesOf(id, previousId));
  }

  streamDecoder(): StreamDecoder {
    return new Utf8StreamDecoder((id, previousId) => this.bytesOf(id, previousId));
  }

  /** The piece of `id` as text (byte tokens as "<0xNN>"), for display. */
  piece(id: number): string {
    this.checkId(id);
    return Buffer.from(this.pieces[id]!).toString('utf8');
  }

  private bytesOf(id: number, previousId: number | undefined): Uint8Array {
    this.checkId(id);
    const bytes = this.outputBytes[id]!;
    // SentencePiece strips the dummy prefix's space of the first piece after BOS.
    if (previousId === BOS_ID && bytes[0] === SPACE && !BYTE_PIECE.test(this.pieceKeys[id]!)) return bytes.subarray(1);
    return bytes;
  }

  private checkId(id: number): void {
    checkTokenId('id', id, this.vocabSize);
  }
}

/**
 * Read a llama2.c tokenizer.bin. With `vocabSize` (the model's), the file
 * must hold exactly that many tokens.
 */
export function readLlama2cTokenizer(file: string, vocabSize?: number): Llama2cTokenizer {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (e) {
    throw new FileFormatError(file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const { pieces, scores } = parseLlama2cTokenizer(file, data);
  if (vocabSize !== undefined && pieces.length !== vocabSize) {
    throw new FileFormatError(file, `has ${pieces.length} tokens but the model's vocab_size is ${vocabSize}`);
  }
  return new Llama2cTokenizer(pieces, scores);
}

function parseLlama2cTokenizer(file: string, data: Buffer): { pieces: Uint8Array[]; scores: Float32Array } {
  if (data.length < 4) throw new FileFormatError(file, `too small for a llama2.c tokenizer (${data.length} bytes)`);
  const maxTokenLength = data.readInt32LE(0);
  if (maxTokenLength < 1) throw new FileFormatError(file, `max_token_length must be positive, got ${maxTokenLength}`);
  const pieces: Uint8Array[] = [];
  const scoreList: number[] = [];
  let at = 4;
  while (at < data.length) {
    const id = pieces.length;
    if (at + 8 > data.length) throw new FileFormatError(file, `truncated: token ${id} at offset ${at} lacks its score and length`);
    const score = data.readFloatLE(at);
    const length = data.readInt32LE(at + 4);
    if (Number.isNaN(score)) throw new FileFormatError(file, `token ${id}: score is NaN`);
    if (length < 0) throw new FileFormatError(file, `token ${id}: negative length ${length} at offset ${at + 4}`);
    // run.c sizes its merge buffer from max_token_length: a longer piece is a corrupt file.
    if (length > maxTokenLength) throw new FileFormatError(file, `token ${id}: length ${length} exceeds max_token_length ${maxTokenLength}`);
    if (at + 8 + length > data.length) {
      throw new FileFormatError(file, `truncated: token ${id} needs ${length} bytes at offset ${at + 8}, the file ends at ${data.length}`);
    }
    pieces.push(data.subarray(at + 8, at + 8 + length));
    scoreList.push(score);
    at += 8 + length;
  }
  if (pieces.length < 3) throw new FileFormatError(file, `has ${pieces.length} tokens; expected at least <unk>, BOS, EOS`);
  return { pieces, scores: Float32Array.from(scoreList) };
}

/**
 * Write a llama2.c tokenizer.bin (max_token_length computed from the pieces),
 * to a temporary name then renamed, so a failure leaves no half file.
 */
export function writeLlama2cTokenizer(file: string, pieces: readonly (string | Uint8Array)[], scores: ArrayLike<number>): void {
  if (pieces.length !== scores.length) throw new UsageError(`writeLlama2cTokenizer: ${pieces.length} pieces but ${scores.length} scores`);
  const bytes = pieces.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p)));
  const maxTokenLength = Math.max(1, ...bytes.map((b) => b.length));
  const parts: Buffer[] = [int32(maxTokenLength)];
  bytes.forEach((b, i) => {
    const head = Buffer.alloc(8);
    head.writeFloatLE(scores[i]!, 0);
    head.writeInt32LE(b.length, 4);
    parts.push(head, b);
  });
  writeFileAtomic(file, Buffer.concat(parts));
}

function int32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  return b;
}
