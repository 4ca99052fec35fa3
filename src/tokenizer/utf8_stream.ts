// Token ids to text, one id at a time. A token may carry part of a character
// (a byte token, or a byte-level BPE piece that splits a UTF-8 sequence), so
// the bytes of each token go through one streaming UTF-8 decoder, which holds
// back an incomplete sequence until the token that completes it arrives.
import type { StreamDecoder } from './types.js';

export class Utf8StreamDecoder implements StreamDecoder {
  // ignoreBOM: a leading U+FEFF is text like any other, not a byte-order mark
  // to drop, or text that starts with one would not round-trip.
  private decoder = new TextDecoder('utf-8', { ignoreBOM: true });

  /** `bytesOf(id, previousId)`: the bytes token `id` contributes after `previousId`. */
  constructor(private readonly bytesOf: (id: number, previousId: number | undefined) => Uint8Array) {}

  private previousId: number | undefined;

  push(id: number): string {
    const bytes = this.bytesOf(id, this.previousId);
    this.previousId = id;
    return this.decoder.decode(bytes, { stream: true });
  }

  /** Held-back bytes of an unfinished character come out as U+FFFD. */
  flush(): string {
    const rest = this.decoder.decode();
    this.decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    return rest;
  }
}

/** Decode all of `ids` at once: the same text a stream decoder gives, then flushed. */
export function decodeAll(ids: readonly number[], bytesOf: (id: number, previousId: number | undefined) => Uint8Array): string {
  const stream = new Utf8StreamDecoder(bytesOf);
  let text = '';
  for (const id of ids) text += stream.push(id);
  return text + stream.flush();
}
