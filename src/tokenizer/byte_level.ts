// GPT-2's byte level: text is split into "words" by a regular expression,
// each word's UTF-8 bytes are the BPE alphabet (so any text is encodable, no
// <unk>), and each byte is written as a printable character in files.

/**
 * GPT-2's pre-tokenizer (openai/gpt-2 encoder.py; Hugging Face ByteLevel with
 * use_regex): contractions, an optional space plus letters, plus digits, plus
 * other symbols, then whitespace runs, a run's last space staying with the
 * next word. `\s` is written as \p{White_Space}: the Rust tokenizers' regex
 * engine (Oniguruma) and Python's `regex` use that set, while JavaScript's \s
 * also takes U+FEFF and misses U+0085.
 */
export const PRETOKENIZE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;

/**
 * The words of `text`, in order; their concatenation is `text`. (The pattern
 * matches every character, but text between matches would be kept too, as
 * Hugging Face's "Isolated" split does.)
 */
export function pretokenize(text: string): string[] {
  const words: string[] = [];
  let end = 0;
  for (const m of text.matchAll(PRETOKENIZE)) {
    if (m.index > end) words.push(text.slice(end, m.index));
    words.push(m[0]);
    end = m.index + m[0].length;
  }
  if (end < text.length) words.push(text.slice(end));
  return words;
}

/**
 * GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves,
 * the other 68 bytes (controls, space, 0x7F-0xA0, 0xAD) map to U+0100 upward
 * in byte order. So the space 0x20 is 'Ġ' (U+0120) and '\n' is 'Ċ' (U+010A).
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const chars: string[] = [];
  let next = 0x100;
  for (let b = 0; b < 256; b++) chars.push(String.fromCharCode(printable(b) ? b : next++));
  return chars;
})();

export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

/** A token written in the byte alphabet -> its bytes; undefined if a character is not in the alphabet. */
export function charsToBytes(token: string): Uint8Array | undefined {
  const bytes = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const b = CHAR_TO_BYTE.get(token[i]!);
    if (b === undefined) return undefined;
    bytes[i] = b;
  }
  return bytes;
}
