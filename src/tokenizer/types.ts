// What every tokenizer offers the rest of the engine.

export interface EncodeOptions {
  /** Prepend the BOS token (default false). */
  bos?: boolean;
  /** Append the EOS token (default false). */
  eos?: boolean;
}

/** Turns ids into printable text as they arrive, holding back incomplete UTF-8. */
export interface StreamDecoder {
  /** Text that token `id` completes (may be empty). */
  push(id: number): string;
  /** Whatever is still held back. */
  flush(): string;
}

export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  /** Whether text is encoded with BOS first when scored or used as a prompt (the model's own convention). */
  readonly addsBosByDefault: boolean;
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[]): string;
  streamDecoder(): StreamDecoder;
}
