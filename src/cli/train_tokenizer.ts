// streamllm train-tokenizer: a byte-level BPE trained on the Brown corpus's
// training split (the held-out texts never shape the vocabulary).
import { checkOutputFile } from '../outputs.js';
import { defineCommand, required } from './args.js';
import { forceFlag } from './common.js';

export const trainTokenizerCommand = defineCommand({
  name: 'train-tokenizer',
  summary: 'train a byte-level BPE tokenizer on the Brown training split',
  usage: '--out FILE [--vocab N]',
  details: 'The zoo uses weights/tokenizer.json, made by: streamllm train-tokenizer --vocab 4096 --out weights/tokenizer.json',
  flags: [
    { name: 'vocab', type: 'int', value: 'N', min: 257, default: 4096, help: 'vocabulary size: 256 bytes + merges + <|endoftext|>' },
    { name: 'out', type: 'string', value: 'FILE', help: 'tokenizer.json to write' },
    forceFlag,
  ],
  async run(flags) {
    const out = required(flags, 'out', 'train-tokenizer');
    checkOutputFile(out, `train-tokenizer --out ${out}`, flags.force === true);
    const { loadBrown } = await import('../data/brown.js');
    const { saveBpe } = await import('../tokenizer/bpe.js');
    const { trainBpe } = await import('../tokenizer/bpe_train.js');
    const texts = loadBrown('train').map((t) => t.text);
    const tokenizer = trainBpe(texts, { vocabSize: flags.vocab });
    saveBpe(tokenizer, out);
    process.stderr.write(`wrote ${out}: ${tokenizer.vocabSize} tokens from ${texts.length} texts\n`);
  },
});
