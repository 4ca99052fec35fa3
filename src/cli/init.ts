// streamllm init: write a llama2.c checkpoint with seeded random weights.
import { UsageError } from '../errors.js';
import { NAMED_SHAPES } from '../model/named_shapes.js';
import { checkOutputFile } from '../outputs.js';
import { defineCommand, required } from './args.js';
import { forceFlag } from './common.js';

/** The checkpoint's header holds each size as an int32. */
const HEADER_MAX = 2 ** 31 - 1;

export const initCommand = defineCommand({
  name: 'init',
  summary: 'write a llama2.c checkpoint with seeded random weights (tests, benchmarks)',
  usage: '(--shape NAME | --dim N --hidden N --layers N --heads N [--kv-heads N] --vocab N --seq-len N) [--seed S] --out FILE',
  details: `Named shapes are llama2.c's stories models: ${Object.keys(NAMED_SHAPES).join(', ')}. Explicit flags override the shape's values.`,
  flags: [
    { name: 'shape', type: 'string', value: 'NAME', choices: Object.keys(NAMED_SHAPES), help: 'start from a named shape' },
    { name: 'dim', type: 'int', value: 'N', min: 1, max: HEADER_MAX, help: 'model width' },
    { name: 'hidden', type: 'int', value: 'N', min: 1, max: HEADER_MAX, help: 'feed-forward width' },
    { name: 'layers', type: 'int', value: 'N', min: 1, max: HEADER_MAX, help: 'transformer layers' },
    { name: 'heads', type: 'int', value: 'N', min: 1, max: HEADER_MAX, help: 'query heads' },
    { name: 'kv-heads', type: 'int', value: 'N', min: 1, max: HEADER_MAX, help: 'key/value heads (default: heads)' },
    { name: 'vocab', type: 'int', value: 'N', min: 1, max: HEADER_MAX, help: 'vocabulary size' },
    { name: 'seq-len', type: 'int', value: 'N', min: 1, max: HEADER_MAX, help: 'trained context length' },
    { name: 'shared-classifier', type: 'bool', default: true, help: 'tie the classifier to the embedding (--shared-classifier=false for a separate one)' },
    { name: 'seed', type: 'int', value: 'S', default: 0, help: 'random seed' },
    { name: 'out', type: 'string', value: 'FILE', help: 'checkpoint to write' },
    forceFlag,
  ],
  async run(flags) {
    const out = required(flags, 'out', 'init');
    const base = flags.shape === undefined ? undefined : NAMED_SHAPES[flags.shape];
    const pick = (flag: 'dim' | 'hidden' | 'layers' | 'heads' | 'kv-heads' | 'vocab' | 'seq-len', fallback: number | undefined): number => {
      const v = flags[flag] ?? fallback;
      if (v === undefined) throw new UsageError(`init: --${flag} is required without --shape`);
      return v;
    };
    const heads = pick('heads', base?.heads);
    const shape = {
      dim: pick('dim', base?.dim),
      hiddenDim: pick('hidden', base?.hiddenDim),
      layers: pick('layers', base?.layers),
      heads,
      kvHeads: pick('kv-heads', base?.kvHeads ?? heads),
      vocabSize: pick('vocab', base?.vocabSize),
      maxSeqLen: pick('seq-len', base?.maxSeqLen),
      sharedClassifier: flags['shared-classifier'],
    };
    if (shape.dim % shape.heads !== 0) throw new UsageError(`init: --heads (${shape.heads}) must divide --dim (${shape.dim})`);
    if (shape.heads % shape.kvHeads !== 0) throw new UsageError(`init: --kv-heads (${shape.kvHeads}) must divide --heads (${shape.heads})`);
    if ((shape.dim / shape.heads) % 2 !== 0) throw new UsageError(`init: head size dim/heads = ${shape.dim / shape.heads} must be even`);
    checkOutputFile(out, `init --out ${out}`, flags.force === true);
    const { llama2cBytes, writeLlama2c } = await import('../checkpoint/llama2c.js');
    const { checkRandomInitFits, randomLlamaReader } = await import('../model/random_init.js');
    checkRandomInitFits(
      shape,
      out,
      `init --dim ${shape.dim} --hidden ${shape.hiddenDim} --layers ${shape.layers} --vocab ${shape.vocabSize} --seq-len ${shape.maxSeqLen}`,
    );
    const bytes = llama2cBytes(shape).file;
    if (bytes > 2 ** 30) process.stderr.write(`writing ${(bytes / 2 ** 30).toFixed(2)} GiB to ${out}\n`);
    writeLlama2c(out, randomLlamaReader(shape, flags.seed)); // drawn as written: never all in memory
    process.stderr.write(`wrote ${out}\n`);
  },
});
