// streamllm train-tokenizer: a byte-level BPE trained on the Brown corpus's
// training split (the held-out texts never shape the vocabulary).
import { UsageError } from '../errors.js';
import { defineCommand, required } from './args.js';

export const trainTokenizerCommand = defineCommand({
  name: 'train-tokenizer',
  summary: 'train a byte-level BPE tokenizer on the Brown training split',
  usage: '--out FILE [--vocab N]',
  details: 'The zoo uses weights/tokenizer.json, made by: streamllm train-tokenizer --vocab 4096 --out weights/tokenizer.json',
  flags: [
    { name: 'vocab', type: 'int', value: 'N', min: 257, default: 4096, help: 'vocabulary size: 256 bytes + merges + <|endoftext|>' },
    { name: 'out', type: 'string', value: 'FILE', help: 'tokenizer.json to write' },
  ],
  async run(flags) {
    const out = required(flags, 'out', 'train-tokenizer');
    const { loadBrown } = await import('../data/brown.js');
    const { saveBpe } = await import('../tokenizer/bpe.js');
    const { trainBpe } = await import('../tokenizer/bpe_train.js');
    const texts = loadBrown('train').map((t) => t.text);
    const tokenizer = trainBpe(texts, { vocabSize: flags.vocab });
    try {
      saveBpe(tokenizer, out);
    } catch (e) {
      throw new UsageError(`train-tokenizer --out ${out}: cannot write (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    process.stderr.write(`wrote ${out}: ${tokenizer.vocabSize} tokens from ${texts.length} texts\n`);
  },
});
