// Tokens back to running text: the Brown corpus (like the Penn Treebank)
// splits punctuation and quotes off the words, "`` no evidence ''", and a
// language model should learn from text as people write it, '"no evidence"'.
//
// Rules: no space before closing punctuation, none after an opening bracket
// or quote; `` and '' become a straight double quote; a lone ' alternates
// between opening and closing; "--" joins the words on either side; a
// full stop after an abbreviation's own stop is dropped.

/** Attach to the token before (no space in front). */
const CLOSING = new Set(['.', ',', ':', ';', '?', '!', ')', ']', '}', "''", '%', '--']);
/** Attach to the token after (no space behind). */
const OPENING = new Set(['(', '[', '{', '``', '--', '$']);

/** Join one paragraph's tokens into text. */
export function detokenize(tokens: readonly string[]): string {
  let out = '';
  let glueNext = true; // nothing to separate from at the start
  let singleOpen = false;
  for (const token of tokens) {
    let word = token;
    let closes = CLOSING.has(token);
    let opens = OPENING.has(token);
    if (token === '``' || token === "''") word = '"';
    // An abbreviation ends the sentence: "Jr." + "." is written "Jr.".
    if (token === '.' && out.endsWith('.') && !out.endsWith('..')) continue;
    if (token === "'") {
      // A lone quote: opening when none is open, else closing.
      opens = !singleOpen;
      closes = singleOpen;
      singleOpen = !singleOpen;
    }
    if (!glueNext && !closes) out += ' ';
    out += word;
    glueNext = opens;
  }
  return out;
}
