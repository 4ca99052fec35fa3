// Reading a text file to score or to prompt with. Two promises:
//
// - Text must be UTF-8. A byte sequence that is not is refused with its byte
//   offset: a decoder that substitutes U+FFFD would have the model score
//   replacement characters as if they were the text.
// - With a token limit, only as much of the file is read and encoded as the
//   limit needs (a 50 MB file scored for 8K tokens reads about a megabyte
//   and encodes about 70 KB of it),
//   and the tokens are exactly the first tokens of the whole file's encoding:
//   the prefix encoded ends at a line break (no tokenizer here merges across
//   one) and runs MARGIN tokens past the limit.
import { closeSync, readSync } from 'node:fs';
import { FileFormatError } from './errors.js';
import { openForReading } from './files.js';
import type { Tokenizer } from './tokenizer/types.js';

const CHUNK_BYTES = 1 << 20;
/** Tokens encoded past the limit, so that the cut at the end of the prefix cannot reach the tokens kept. */
const MARGIN = 64;

/**
 * A UTF-8 validator fed a chunk at a time: the offset of the first byte of
 * the first ill-formed sequence (an invalid byte, an overlong form, a
 * surrogate, a code point past U+10FFFF, a truncated sequence).
 */
export class Utf8Validator {
  private need = 0; // continuation bytes still expected
  private lo = 0x80; // allowed range of the next continuation byte
  private hi = 0xbf;
  private start = 0; // offset of the sequence being read
  private offset = 0; // bytes seen so far

  /** -1 if `bytes` continue valid UTF-8, else the offset of the bad sequence. */
  push(bytes: Uint8Array): number {
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      const at = this.offset + i;
      if (this.need === 0) {
        if (b < 0x80) continue;
        this.start = at;
        this.lo = 0x80;
        this.hi = 0xbf;
        if (b >= 0xc2 && b <= 0xdf) this.need = 1;
        else if (b >= 0xe0 && b <= 0xef) {
          this.need = 2;
          if (b === 0xe0) this.lo = 0xa0; // overlong
          if (b === 0xed) this.hi = 0x9f; // surrogates
        } else if (b >= 0xf0 && b <= 0xf4) {
          this.need = 3;
          if (b === 0xf0) this.lo = 0x90; // overlong
          if (b === 0xf4) this.hi = 0x8f; // past U+10FFFF
        } else return at;
      } else {
        if (b < this.lo || b > this.hi) return this.start;
        this.lo = 0x80;
        this.hi = 0xbf;
        this.need--;
      }
    }
    this.offset += bytes.length;
    return -1;
  }

  /** At the end of the input: -1, or the offset of a sequence cut short. */
  end(): number {
    return this.need === 0 ? -1 : this.start;
  }
}

/** A text file read as UTF-8 a chunk at a time, refusing what is not UTF-8. */
class TextFileReader {
  private readonly fd: number;
  private readonly buffer = Buffer.alloc(CHUNK_BYTES);
  private readonly validator = new Utf8Validator();
  // ignoreBOM: a leading U+FEFF stays part of the text, as it was when the file was read whole
  private readonly decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  bytesRead = 0;
  done = false;

  constructor(readonly file: string) {
    this.fd = openForReading(file);
  }

  /** The next piece of text ('' once done). */
  next(): string {
    if (this.done) return '';
    let n: number;
    try {
      n = readSync(this.fd, this.buffer, 0, CHUNK_BYTES, null);
    } catch (e) {
      throw new FileFormatError(this.file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    if (n === 0) {
      this.done = true;
      const bad = this.validator.end();
      if (bad >= 0) throw new FileFormatError(this.file, `not UTF-8 text: the file ends inside a character that starts at byte offset ${bad}`);
      return this.decoder.decode();
    }
    const bytes = this.buffer.subarray(0, n);
    const bad = this.validator.push(bytes);
    if (bad >= 0) {
      const first = bad >= this.bytesRead ? ` (0x${bytes[bad - this.bytesRead]!.toString(16).padStart(2, '0')})` : '';
      throw new FileFormatError(this.file, `not UTF-8 text: invalid byte sequence at byte offset ${bad}${first}; convert the file to UTF-8 first`);
    }
    this.bytesRead += n;
    return this.decoder.decode(bytes, { stream: true });
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** A whole text file, which must be UTF-8. */
export function readUtf8File(file: string): string {
  const reader = new TextFileReader(file);
  try {
    const parts: string[] = [];
    while (!reader.done) parts.push(reader.next());
    return parts.join('');
  } finally {
    reader.close();
  }
}

/** Fail now, not after loading a model, if `file` cannot be opened. */
export function checkReadable(file: string): void {
  closeSync(openForReading(file));
}

/**
 * The tokens of a UTF-8 text file; with `limit`, its first `limit` tokens
 * (fewer if the file is shorter), reading only as much as they need.
 */
export function encodeTextFile(file: string, tokenizer: Tokenizer, options: { bos?: boolean; limit?: number } = {}): number[] {
  const { bos = false, limit } = options;
  if (limit === undefined) return tokenizer.encode(readUtf8File(file), { bos });
  const reader = new TextFileReader(file);
  try {
    let text = '';
    // A token is rarely more than 8 characters; the budget doubles until the prefix holds enough tokens.
    // Only the prefix is encoded, not the whole chunk read (a limit of 50 tokens encodes a few hundred
    // characters, not a megabyte).
    let budget = (limit + MARGIN) * 8;
    for (;;) {
      while (!reader.done && text.length < budget) text += reader.next();
      if (reader.done && text.length <= budget) return tokenizer.encode(text, { bos }).slice(0, limit);
      const cut = text.lastIndexOf('\n', budget - 1) + 1;
      if (cut > 0) {
        const ids = tokenizer.encode(text.slice(0, cut), { bos });
        if (ids.length >= limit + MARGIN) return ids.slice(0, limit);
      }
      budget *= 2;
    }
  } finally {
    reader.close();
  }
}
