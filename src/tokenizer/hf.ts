// Hugging Face `tokenizer.json` tokenizers (BPE with byte-level or byte
// fallback, Unigram, WordPiece), run by @huggingface/tokenizers, the pure
// JavaScript port that transformers.js uses, and wrapped in our Tokenizer
// interface. Reads, from the model directory:
//   tokenizer.json          the tokenizer itself (required)
//   tokenizer_config.json   bos_token / eos_token, add_bos_token, clean_up_tokenization_spaces (optional)
//   config.json             bos_token_id / eos_token_id, when the tokenizer names none (optional)
//
// encode() never adds special tokens by itself: BOS and EOS come only from
// EncodeOptions, as for every Tokenizer. `addsBosByDefault` says whether the
// model's own tokenizer would prepend BOS (Llama yes, GPT-NeoX and Qwen2 no).
import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FileFormatError } from '../errors.js';
import type { EncodeOptions, StreamDecoder, Tokenizer } from './types.js';
import { readJsonFile } from '../files.js';
import { checkTokenId, checkTokenIds } from '../model/token_ids.js';

export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';

type Json = Record<string, unknown>;

function readJson(file: string): Json {
  const json = readJsonFile(file);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FileFormatError(file, 'not a JSON object');
  return json as Json;
}

/** A token named in tokenizer_config.json: a string, or an AddedToken object {content}. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

function tokenId(v: unknown): number | undefined {
  const id = Array.isArray(v) ? v[0] : v;
  return typeof id === 'number' && Number.isSafeInteger(id) && id >= 0 ? id : undefined;
}

/** The tokenizer models @huggingface/tokenizers runs; it would run anything else as a pass-through. */
export const SUPPORTED_TOKENIZER_MODELS = ['BPE', 'WordPiece', 'Unigram'] as const;

/**
 * Refuse, at load, a tokenizer model the library would run wrongly: an
 * unsupported family (WordLevel, or no recognisable model), or an unknown
 * token that is not in the vocabulary (every piece outside it would have no
 * id, and the forward pass would fail on it).
 */
function checkTokenizerModel(json: Json, source: string): void {
  const model = json.model;
  if (typeof model !== 'object' || model === null || Array.isArray(model)) throw new FileFormatError(source, 'has no "model" object');
  const m = model as Json;
  // as the library infers a missing type: a list vocabulary is Unigram, a map with merges BPE, without WordPiece
  const inferred = Array.isArray(m.vocab) ? 'Unigram' : 'merges' in m ? 'BPE' : 'unk_token' in m && 'continuing_subword_prefix' in m ? 'WordPiece' : undefined;
  const type = m.type ?? inferred;
  if (typeof type !== 'string' || !(SUPPORTED_TOKENIZER_MODELS as readonly string[]).includes(type)) {
    throw new FileFormatError(source, `tokenizer model ${JSON.stringify(type ?? null)} is not supported (supported: ${SUPPORTED_TOKENIZER_MODELS.join(', ')})`);
  }
  const vocab = m.vocab;
  if (type === 'Unigram') {
    if (!Array.isArray(vocab)) throw new FileFormatError(source, 'Unigram model.vocab must be a list of [piece, score]');
    const unk = m.unk_id;
    if (!(typeof unk === 'number' && Number.isInteger(unk) && unk >= 0 && unk < vocab.length)) {
      throw new FileFormatError(
        source,
        `Unigram model.unk_id ${JSON.stringify(unk ?? null)} is not a token id in 0..${vocab.length - 1}: text outside the vocabulary could not be encoded`,
      );
    }
    return;
  }
  if (typeof vocab !== 'object' || vocab === null || Array.isArray(vocab)) throw new FileFormatError(source, `${type} model.vocab must map pieces to ids`);
  const unk = m.unk_token;
  const missing = typeof unk !== 'string' || !Object.hasOwn(vocab, unk);
  // WordPiece always needs its unknown token; BPE only when it names one (else byte fallback or no unknowns)
  if (missing && (type === 'WordPiece' || (unk !== null && unk !== undefined))) {
    throw new FileFormatError(source, `${type} model.unk_token ${JSON.stringify(unk ?? null)} is not in the vocabulary: text outside it could not be encoded`);
  }
  // byte fallback spells an unknown character as its UTF-8 bytes, <0x00> to <0xFF>
  if (type === 'BPE' && m.byte_fallback === true) {
    for (let b = 0; b < 256; b++) {
      const piece = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
      if (!Object.hasOwn(vocab, piece)) throw new FileFormatError(source, `BPE model.byte_fallback is true but the vocabulary lacks the byte token ${piece}`);
    }
  }
}

/** Tokens kept before the read point when decoding a stream: enough context for decoders that look back (Strip, Metaspace). */
const STREAM_CONTEXT_TOKENS = 4;

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  /** Whether the model's tokenizer prepends BOS when asked for special tokens. */
  readonly addsBosByDefault: boolean;

  private constructor(
    private readonly impl: HfTokenizerImpl,
    ids: { bos?: number; eos?: number; addBos?: boolean },
    private readonly source: string,
  ) {
    let maxId = -1;
    for (const id of impl.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.bosId = ids.bos;
    this.eosId = ids.eos;
    this.addsBosByDefault = ids.addBos ?? this.templateAddsBos();
  }

  /**
   * Build from parsed files. `source` names tokenizer.json in errors;
   * `modelConfig` is config.json, for bos/eos ids the tokenizer lacks.
   */
  static fromJson(tokenizerJson: Json, tokenizerConfig: Json = {}, modelConfig: Json = {}, source = TOKENIZER_FILE): HfTokenizer {
    checkTokenizerModel(tokenizerJson, source);
    let impl: HfTokenizerImpl;
    const config = { ...tokenizerConfig, clean_up_tokenization_spaces: tokenizerConfig.clean_up_tokenization_spaces ?? false };
    try {
      impl = new HfTokenizerImpl(tokenizerJson, config);
    } catch (e) {
      throw new FileFormatError(source, `not a supported tokenizer (${(e as Error).message})`);
    }
    // tokenizer_config.json decides when it names the token, even as null
    // (Qwen2 has no BOS though its config.json lists a bos_token_id).
    const idOf = (key: 'bos' | 'eos') => {
      const name = `${key}_token`;
      if (!(name in tokenizerConfig)) return tokenId(modelConfig[`${key}_token_id`]);
      const text = tokenText(tokenizerConfig[name]);
      return text === undefined ? undefined : impl.token_to_id(text);
    };
    const addBos = tokenizerConfig.add_bos_token;
    return new HfTokenizer(impl, { bos: idOf('bos'), eos: idOf('eos'), addBos: typeof addBos === 'boolean' ? addBos : undefined }, source);
  }

  /** Open DIR/tokenizer.json (with tokenizer_config.json and config.json when present). */
  static fromDir(dir: string): HfTokenizer {
    return HfTokenizer.fromFile(join(dir, TOKENIZER_FILE));
  }

  /** Open a tokenizer.json, with the tokenizer_config.json and config.json beside it when present. */
  static fromFile(file: string): HfTokenizer {
    if (!existsSync(file)) throw new FileFormatError(file, 'no such file (a Hugging Face model directory needs tokenizer.json)');
    const beside = (name: string) => join(dirname(file), name);
    const optional = (name: string) => (existsSync(beside(name)) ? readJson(beside(name)) : {});
    return HfTokenizer.fromJson(readJson(file), optional(TOKENIZER_CONFIG_FILE), optional('config.json'), file);
  }

  /** True when the tokenizer's post-processor puts BOS in front of a text. */
  private templateAddsBos(): boolean {
    if (this.bosId === undefined) return false;
    const plain = this.impl.encode('a', { add_special_tokens: false }).ids;
    const special = this.impl.encode('a', { add_special_tokens: true }).ids;
    return special[0] === this.bosId && plain[0] !== this.bosId;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const encoding = this.impl.encode(text, { add_special_tokens: false });
    const ids = encoding.ids;
    // A piece the vocabulary lacks, with no unknown token to stand for it,
    // comes back without an id: refuse here rather than in the forward pass.
    const bad = ids.findIndex((id: number) => !(Number.isSafeInteger(id) && id >= 0 && id < this.vocabSize));
    if (bad >= 0) {
      const piece = encoding.tokens[bad] ?? '';
      throw new FileFormatError(
        this.source,
        `cannot encode ${JSON.stringify(piece)} (token ${bad} of the text): it is not in the vocabulary and the tokenizer has no unknown token`,
      );
    }
    if (options.bos) {
      if (this.bosId === undefined) throw new FileFormatError(TOKENIZER_FILE, 'BOS requested, but the tokenizer defines no bos_token');
      ids.unshift(this.bosId);
    }
    if (options.eos) {
      if (this.eosId === undefined) throw new FileFormatError(TOKENIZER_FILE, 'EOS requested, but the tokenizer defines no eos_token');
      ids.push(this.eosId);
    }
    return ids;
  }

  /** Text of `ids`, special tokens (BOS, EOS, padding) left out. */
  decode(ids: readonly number[]): string {
    checkTokenIds('ids', ids, this.vocabSize); // (the library decoded an id past its vocabulary to nothing, and refused 1.5 in words of its own)
    if (ids.length === 0) return ''; // the library refuses an empty list
    return this.impl.decode([...ids], { skip_special_tokens: true });
  }

  /**
   * Incremental decoding as vLLM does it: decode a short window of recent
   * tokens with and without the new ones and emit the difference, once it
   * no longer ends in U+FFFD (an incomplete UTF-8 sequence of byte tokens).
   * Decoding in context keeps the spaces that Metaspace/Strip decoders
   * drop at the start of a text.
   */
  streamDecoder(): StreamDecoder {
    let ids: number[] = [];
    let prefixEnd = 0; // ids[0..prefixEnd) are printed context
    const pending = () => {
      const before = this.decode(ids.slice(0, prefixEnd));
      const after = this.decode(ids);
      return after.length > before.length && after.startsWith(before) ? after.slice(before.length) : after.slice(Math.min(before.length, after.length));
    };
    return {
      push: (id: number) => {
        checkTokenId('id', id, this.vocabSize);
        ids.push(id);
        const text = pending();
        if (text.length === 0 || text.endsWith('\uFFFD')) return '';
        // Keep a few printed tokens as context, drop the rest.
        const keep = Math.max(0, ids.length - STREAM_CONTEXT_TOKENS);
        ids = ids.slice(keep);
        prefixEnd = ids.length;
        return text;
      },
      flush: () => {
        const text = pending();
        ids = [];
        prefixEnd = 0;
        return text;
      },
    };
  }
}
