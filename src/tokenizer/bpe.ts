// Byte-level BPE in GPT-2's style, stored as a Hugging Face tokenizer.json.
//
// encode: split out added tokens ("<|endoftext|>"), pre-tokenize the rest
// into words (byte_level.ts), turn each word into its UTF-8 byte tokens and
// merge adjacent pairs by merge rank (the earliest-learned merge first, the
// leftmost on ties: Hugging Face's BPE). Words repeat, so their encodings are
// cached. decode: concatenate the tokens' bytes and read them as UTF-8.
//
// The file is the one Hugging Face tokenizers writes for GPT-2: model type
// BPE with `vocab` (token -> id, tokens spelled in the byte alphabet) and
// `merges` ("left right", in rank order), ByteLevel pre-tokenizer, decoder
// and post-processor, the special tokens under `added_tokens`. So
// `tokenizers.Tokenizer.from_file` and transformers' PreTrainedTokenizerFast
// open it and give the same ids. This reader takes exactly that family:
// another kind of tokenizer.json is refused with the reason
// (`byteLevelBpeProblem`), not misread.
//
// Our trainer's layout (bpe_train.ts): ids 0..255 are the bytes 0..255, then
// one id per learned merge, then "<|endoftext|>" last. That one special token
// separates documents; it serves as both BOS and EOS, as in GPT-2.
import { FileFormatError, UsageError } from '../errors.js';
import { BYTE_TO_CHAR, charsToBytes, pretokenize } from './byte_level.js';
import { mergePairs, type PairMerge } from './pair_merge.js';
import type { EncodeOptions, StreamDecoder, Tokenizer } from './types.js';
import { decodeAll, Utf8StreamDecoder } from './utf8_stream.js';
import { readJsonFile } from '../files.js';
import { writeFileAtomic } from '../outputs.js';
import { checkTokenId, checkTokenIds } from '../model/token_ids.js';

export const END_OF_TEXT = '<|endoftext|>';

export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

/** Pair keys: left * 2^21 + right, exact in a double for ids below 2^21. */
const PAIR_SHIFT = 2 ** 21;
/** Distinct words whose encoding is kept; beyond it the cache starts over. */
const CACHE_WORDS = 100_000;

export class BpeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  /** Our models are trained on texts separated by <|endoftext|>, so a text starts after one. */
  get addsBosByDefault(): boolean {
    return this.bosId !== undefined;
  }
  /** Each id's token as stored (byte alphabet), or an added token's content. */
  private readonly tokens: string[];
  /** What each id decodes to. */
  private readonly tokenBytes: Uint8Array[];
  /** Id of the single-byte token of each byte. */
  private readonly byteIds = new Int32Array(256);
  private readonly pairMerges = new Map<number, PairMerge>();
  private readonly addedById = new Map<number, AddedToken>();
  /** Matches any added token, longest first; undefined when there are none. */
  private readonly addedPattern: RegExp | undefined;
  private readonly addedByContent = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();

  /**
   * `vocab`: token (byte alphabet) -> id; `merges`: pairs of tokens in rank
   * order; `addedTokens`: matched in raw text before pre-tokenization. Ids
   * of vocab and added tokens together must be 0..n-1 without gaps.
   */
  constructor(
    readonly vocab: ReadonlyMap<string, number>,
    readonly merges: readonly (readonly [string, string])[],
    readonly addedTokens: readonly AddedToken[] = [],
  ) {
    const tokenOf: (string | undefined)[] = [];
    for (const [token, id] of vocab) {
      if (!Number.isInteger(id) || id < 0 || id >= PAIR_SHIFT) {
        throw new UsageError(`BPE vocab: id ${id} of ${JSON.stringify(token)} is not an integer in [0, 2^21)`);
      }
      if (tokenOf[id] !== undefined) {
        throw new UsageError(`BPE vocab: id ${id} is used by ${JSON.stringify(tokenOf[id])} and ${JSON.stringify(token)}`);
      }
      tokenOf[id] = token;
    }
    for (const a of addedTokens) {
      if (!Number.isInteger(a.id) || a.id < 0 || a.id >= PAIR_SHIFT) {
        throw new UsageError(`BPE added token ${JSON.stringify(a.content)}: bad id ${a.id}`);
      }
      if (a.content.length === 0) throw new UsageError(`BPE added token ${a.id}: empty content`);
      const inVocab = tokenOf[a.id];
      if (inVocab !== undefined && inVocab !== a.content) {
        throw new UsageError(`BPE added token ${JSON.stringify(a.content)}: id ${a.id} is the vocab's ${JSON.stringify(inVocab)}`);
      }
      tokenOf[a.id] = a.content;
      this.addedById.set(a.id, a);
      this.addedByContent.set(a.content, a.id);
    }
    this.vocabSize = tokenOf.length;
    const gap = Array.from(tokenOf.keys()).find((id) => tokenOf[id] === undefined);
    if (gap !== undefined) throw new UsageError(`BPE vocab: no token has id ${gap} (ids must be 0..${this.vocabSize - 1})`);

    this.tokens = tokenOf as string[];
    this.tokenBytes = tokenOf.map((token, id) => {
      const added = this.addedById.get(id);
      if (added !== undefined) return new TextEncoder().encode(added.content);
      const bytes = charsToBytes(token!);
      if (bytes === undefined) {
        throw new UsageError(`BPE vocab: ${JSON.stringify(token)} (id ${id}) has a character outside the byte alphabet`);
      }
      return bytes;
    });
    for (let b = 0; b < 256; b++) {
      const id = vocab.get(BYTE_TO_CHAR[b]!);
      if (id === undefined) {
        throw new UsageError(`BPE vocab: no token for byte 0x${b.toString(16).padStart(2, '0')} (${JSON.stringify(BYTE_TO_CHAR[b])})`);
      }
      this.byteIds[b] = id;
    }
    merges.forEach(([left, right], rank) => {
      const l = vocab.get(left);
      const r = vocab.get(right);
      const merged = vocab.get(left + right);
      if (l === undefined || r === undefined || merged === undefined) {
        const missing = l === undefined ? left : r === undefined ? right : left + right;
        const pair = `${JSON.stringify(left)} ${JSON.stringify(right)}`;
        throw new UsageError(`BPE merge ${rank} (${pair}): ${JSON.stringify(missing)} is not in the vocab`);
      }
      const key = l * PAIR_SHIFT + r;
      // A repeated pair keeps its first (best) rank, as Hugging Face does.
      if (!this.pairMerges.has(key)) this.pairMerges.set(key, { rank, id: merged });
    });
    const end = this.addedByContent.get(END_OF_TEXT);
    this.bosId = end;
    this.eosId = end;
    const contents = [...this.addedByContent.keys()].sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
    this.addedPattern = contents.length === 0 ? undefined : new RegExp(contents.map(escapeRegExp).join('|'), 'g');
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids: number[] = [];
    if (options.bos) ids.push(this.requireSpecial('bos', this.bosId));
    let end = 0;
    // Added tokens are cut out first (Hugging Face does the same), so the
    // text "<|endoftext|>" becomes the special token and decodes back to itself.
    if (this.addedPattern !== undefined) {
      for (const m of text.matchAll(this.addedPattern)) {
        this.encodeOrdinary(text.slice(end, m.index), ids);
        ids.push(this.addedByContent.get(m[0])!);
        end = m.index + m[0].length;
      }
    }
    this.encodeOrdinary(text.slice(end), ids);
    if (options.eos) ids.push(this.requireSpecial('eos', this.eosId));
    return ids;
  }

  decode(ids: readonly number[]): string {
    checkTokenIds('ids', ids, this.vocabSize);
    return decodeAll(ids, (id) => this.bytesOf(id));
  }

  streamDecoder(): StreamDecoder {
    return new Utf8StreamDecoder((id) => this.bytesOf(id));
  }

  /** The token of `id` as stored (byte alphabet, e.g. "Ġthe"), or an added token's content. */
  piece(id: number): string {
    this.bytesOf(id);
    return this.tokens[id]!;
  }

  private encodeOrdinary(text: string, ids: number[]): void {
    if (text.length === 0) return;
    for (const word of pretokenize(text)) {
      let wordIds = this.cache.get(word);
      if (wordIds === undefined) {
        wordIds = this.encodeWord(word);
        if (this.cache.size >= CACHE_WORDS) this.cache.clear();
        this.cache.set(word, wordIds);
      }
      for (const id of wordIds) ids.push(id);
    }
  }

  private encodeWord(word: string): number[] {
    const symbols = Array.from(Buffer.from(word, 'utf8'), (b) => this.byteIds[b]!);
    return mergePairs(symbols, (left, right) => this.pairMerges.get(left * PAIR_SHIFT + right));
  }

  private bytesOf(id: number): Uint8Array {
    checkTokenId('id', id, this.vocabSize);
    return this.tokenBytes[id]!;
  }

  private requireSpecial(option: 'bos' | 'eos', id: number | undefined): number {
    if (id === undefined) throw new UsageError(`${option}: this tokenizer has no ${END_OF_TEXT} token`);
    return id;
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// --- tokenizer.json -------------------------------------------------------

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Why `json` is not a byte-level BPE tokenizer.json this reader handles
 * (undefined when it is). The reason names the field and what it holds, so a
 * caller can fall back to a general Hugging Face loader or say why not.
 */
export function byteLevelBpeProblem(json: unknown): string | undefined {
  if (!isObject(json)) return 'the top level is not a JSON object';
  const model = json['model'];
  if (!isObject(model)) return 'has no "model" object';
  if (model['type'] !== 'BPE') return `model.type is ${JSON.stringify(model['type'])}, expected "BPE"`;
  if (json['normalizer'] != null) return `normalizer ${describe(json['normalizer'])} is not supported (expected null)`;
  const pre = json['pre_tokenizer'];
  if (!isObject(pre) || pre['type'] !== 'ByteLevel') return `pre_tokenizer ${describe(pre)} is not supported (expected ByteLevel)`;
  if (pre['add_prefix_space'] === true) return 'pre_tokenizer.add_prefix_space true is not supported';
  if (pre['use_regex'] === false) return 'pre_tokenizer.use_regex false is not supported';
  const decoder = json['decoder'];
  if (!isObject(decoder) || decoder['type'] !== 'ByteLevel') return `decoder ${describe(decoder)} is not supported (expected ByteLevel)`;
  const post = json['post_processor'];
  if (post != null && !(isObject(post) && post['type'] === 'ByteLevel')) {
    return `post_processor ${describe(post)} is not supported (expected ByteLevel or null)`;
  }
  if (model['dropout'] != null && model['dropout'] !== 0) return `model.dropout ${JSON.stringify(model['dropout'])} is not supported`;
  if (model['byte_fallback'] === true) return 'model.byte_fallback true is not supported';
  if (model['ignore_merges'] === true) return 'model.ignore_merges true is not supported';
  for (const field of ['continuing_subword_prefix', 'end_of_word_suffix']) {
    if (model[field] != null && model[field] !== '') return `model.${field} ${JSON.stringify(model[field])} is not supported`;
  }
  const added = json['added_tokens'] ?? [];
  if (!Array.isArray(added)) return 'added_tokens is not an array';
  for (const a of added) {
    if (isObject(a) && (a['lstrip'] === true || a['rstrip'] === true || a['single_word'] === true)) {
      return `added token ${JSON.stringify(a['content'])}: lstrip/rstrip/single_word are not supported`;
    }
  }
  return undefined;
}

function describe(v: unknown): string {
  return isObject(v) ? JSON.stringify(v['type']) : JSON.stringify(v ?? null);
}

/** A tokenizer from parsed tokenizer.json (`file` names it in errors). */
export function bpeFromJson(json: unknown, file: string): BpeTokenizer {
  const problem = byteLevelBpeProblem(json);
  if (problem !== undefined) throw new FileFormatError(file, `not a byte-level BPE tokenizer.json: ${problem}`);
  const root = json as Json;
  const model = root['model'] as Json;
  const rawVocab = model['vocab'];
  if (!isObject(rawVocab)) throw new FileFormatError(file, 'model.vocab: expected an object of token -> id');
  const vocab = new Map<string, number>();
  for (const [token, id] of Object.entries(rawVocab)) {
    if (!Number.isInteger(id) || (id as number) < 0) {
      throw new FileFormatError(file, `model.vocab[${JSON.stringify(token)}]: expected an integer id >= 0, got ${JSON.stringify(id)}`);
    }
    vocab.set(token, id as number);
  }
  const rawMerges = model['merges'];
  if (!Array.isArray(rawMerges)) throw new FileFormatError(file, 'model.merges: expected an array');
  const merges = rawMerges.map((m: unknown, i): [string, string] => {
    // "left right" (the classic form; byte-level tokens hold no space) or ["left", "right"].
    const parts = typeof m === 'string' ? m.split(' ') : m;
    if (!Array.isArray(parts) || parts.length !== 2 || !parts.every((p) => typeof p === 'string' && p.length > 0)) {
      throw new FileFormatError(file, `model.merges[${i}]: expected "left right" or ["left", "right"], got ${JSON.stringify(m)}`);
    }
    return [parts[0] as string, parts[1] as string];
  });
  const addedTokens = ((root['added_tokens'] ?? []) as unknown[]).map((a, i): AddedToken => {
    if (!isObject(a) || !Number.isInteger(a['id']) || typeof a['content'] !== 'string') {
      throw new FileFormatError(file, `added_tokens[${i}]: expected {"id": integer, "content": string, ...}`);
    }
    return { id: a['id'] as number, content: a['content'], special: a['special'] === true };
  });
  try {
    return new BpeTokenizer(vocab, merges, addedTokens);
  } catch (e) {
    if (e instanceof UsageError) throw new FileFormatError(file, e.message);
    throw e;
  }
}

/** Read a tokenizer.json written by `saveBpe` (or any GPT-2-style byte-level BPE). */
export function loadBpe(file: string): BpeTokenizer {
  return bpeFromJson(readJsonFile(file), file);
}

/** The tokenizer.json text: the layout Hugging Face writes, vocab in id order. */
export function bpeToJson(tok: BpeTokenizer): string {
  const settings = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  const head: Json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: tok.addedTokens.map((a) => ({
      id: a.id,
      content: a.content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: a.special,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', ...settings },
    // GPT-2's settings; neither adds tokens, they only adjust offsets.
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  };
  const model: Json = {
    type: 'BPE',
    dropout: null,
    unk_token: null,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: false,
    byte_fallback: false,
  };
  const indent = (s: string, by: string) => s.replace(/\n/g, `\n${by}`);
  const lines: string[] = ['{'];
  for (const [key, value] of Object.entries(head)) lines.push(`  ${JSON.stringify(key)}: ${indent(JSON.stringify(value, null, 2), '  ')},`);
  lines.push('  "model": {');
  for (const [key, value] of Object.entries(model)) lines.push(`    ${JSON.stringify(key)}: ${JSON.stringify(value)},`);
  // Written by hand: an object literal would move integer-like keys ("0".."9") to the front.
  const vocab = [...tok.vocab].sort((a, b) => a[1] - b[1]);
  lines.push('    "vocab": {');
  vocab.forEach(([token, id], i) => lines.push(`      ${JSON.stringify(token)}: ${id}${i + 1 < vocab.length ? ',' : ''}`));
  lines.push('    },');
  lines.push('    "merges": [');
  tok.merges.forEach(([l, r], i) => lines.push(`      ${JSON.stringify(`${l} ${r}`)}${i + 1 < tok.merges.length ? ',' : ''}`));
  lines.push('    ]', '  }', '}', '');
  return lines.join('\n');
}

/** Write `tok` as tokenizer.json: to a temporary name, then renamed. */
export function saveBpe(tok: BpeTokenizer, file: string): void {
  writeFileAtomic(file, bpeToJson(tok));
}
