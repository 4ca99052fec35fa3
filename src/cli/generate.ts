// streamllm generate: stream text from a model through a cache policy, for a
// number of tokens or, with --steps 0, until Ctrl-C.
import { type CachePolicy, policyLabel, policySpan } from '../cache/policies.js';
import { UsageError } from '../errors.js';
import { badTokenId } from '../model/token_ids.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { defineCommand, required } from './args.js';
import { cacheFlag, cacheFlags, policyFromFlags } from './cache_flags.js';
import { backendFlag, startBackend, writeOut } from './common.js';
import { placementFlags } from './placement_flags.js';

export const generateCommand = defineCommand({
  name: 'generate',
  summary: 'generate text, for N tokens or forever at constant memory',
  usage: '--model PATH [--tokenizer TOK] (--prompt TEXT | --prompt-ids 1,2,3) --steps N [--temperature T] [--top-p P] [--seed S] [--cache POLICY] [--json]',
  details: [
    '--steps 0 generates until interrupted (Ctrl-C ends cleanly with a summary). The default cache is streaming',
    '(4 sinks + a window of the trained length minus 4), which equals dense attention until the stream outgrows',
    'the trained length and then keeps going at constant memory. Generation stops early when the model emits',
    "BOS or EOS, as llama2.c's run.c does, unless --ignore-eos.",
  ].join('\n'),
  flags: [
    { name: 'model', type: 'string', value: 'PATH', help: 'llama2.c checkpoint or model directory' },
    { name: 'tokenizer', type: 'string', value: 'TOK', help: 'tokenizer file (default: the one in the model directory)' },
    { name: 'prompt', type: 'string', value: 'TEXT', help: 'prompt text (encoded with BOS when the tokenizer has one)' },
    { name: 'prompt-ids', type: 'ints', value: 'IDS', help: 'prompt as comma-separated token ids' },
    { name: 'steps', type: 'int', value: 'N', min: 0, default: 256, help: 'tokens to generate, 0 for no limit' },
    { name: 'temperature', type: 'number', value: 'T', min: 0, default: 1, help: '0 is greedy (argmax)' },
    { name: 'top-p', type: 'number', value: 'P', min: 0, max: 1, default: 0.9, help: 'nucleus sampling threshold (1 disables it)' },
    { name: 'seed', type: 'int', value: 'S', default: 0, help: 'sampling seed' },
    cacheFlag('string', 'streaming', 'cache policy'),
    ...cacheFlags,
    { name: 'ignore-eos', type: 'bool', help: 'keep going past BOS/EOS' },
    { name: 'json', type: 'bool', help: 'print {"ids": [...]} (prompt then generated ids) instead of text' },
    ...placementFlags,
    backendFlag,
  ],
  async run(flags) {
    const modelPath = required(flags, 'model', 'generate');
    if ((flags.prompt === undefined) === (flags['prompt-ids'] === undefined)) {
      throw new UsageError('generate: give exactly one of --prompt TEXT and --prompt-ids IDS');
    }
    const { steps } = flags;
    await startBackend(flags);
    const { resolveTokenizer } = await import('./inputs.js');
    const { checkCacheBudget } = await import('./cache_budget.js');
    const { createSampler } = await import('../sample/sampler.js');
    const { generate } = await import('../generate.js');
    const { loadPlacedModel } = await import('./placement.js');
    const { disposeModel } = await import('../model/weights.js');
    const model = await loadPlacedModel(modelPath, flags, 'generate');
    let interrupted = false;
    const onSigint = () => (interrupted = true);
    // from here on every exit frees the model, a refused input included (its tensors, the pool's workers)
    try {
      const vocab = model.config.vocabSize;
      const tokenizer = resolveTokenizer(flags.tokenizer, modelPath, vocab);
      const prompt = promptIds(flags.prompt, flags['prompt-ids'], tokenizer, vocab);
      const policy = policyFromFlags('generate', flags.cache, flags, model.config.maxSeqLen);
      warnAboutLength(policy, model.config.maxSeqLen, steps, prompt.length);
      const streamTokens = steps === 0 ? Infinity : prompt.length + steps + (model.config.sinkToken ? 1 : 0);
      // the prompt is one block, then a token at a time
      const plan = {
        tokens: streamTokens,
        tokensFlag: '--steps',
        block: prompt.length,
        blockGiven: false,
        windowGiven: flags.window !== undefined || flags.budget !== undefined,
      };
      checkCacheBudget(policy, model.config, plan);
      const sample = createSampler({ temperature: flags.temperature, topP: flags['top-p'], seed: flags.seed });
      const stopIds = flags['ignore-eos'] ? [] : [tokenizer?.bosId ?? 1, tokenizer?.eosId ?? 2];

      process.on('SIGINT', onSigint);
      const decoder = tokenizer?.streamDecoder();
      const generated: number[] = [];
      const started = performance.now();
      let lastStatus = started;
      let status = '';
      if (!flags.json && decoder) await writeOut(prompt.map((id) => decoder.push(id)).join(''));
      for await (const step of generate(model, policy, prompt, sample, { steps, stopIds, shouldStop: () => interrupted })) {
        generated.push(step.id);
        if (!flags.json) await writeOut(decoder ? decoder.push(step.id) : `${step.id} `);
        const now = performance.now();
        status = statusLine(step.generated, (now - started) / 1000, step.stream.cacheSize, step.stream.cacheBytes, policy);
        if (now - lastStatus > 5000) {
          process.stderr.write(`\n${status}\n`);
          lastStatus = now;
        }
      }
      if (flags.json) await writeOut(JSON.stringify({ ids: [...prompt, ...generated] }) + '\n');
      else await writeOut((decoder?.flush() ?? '') + '\n');
      const seconds = (performance.now() - started) / 1000;
      const summary = status || statusLine(generated.length, seconds, 0, 0, policy);
      process.stderr.write(`${interrupted ? 'interrupted: ' : ''}${summary}\n`);
    } finally {
      process.off('SIGINT', onSigint);
      await disposeModel(model); // its tensors freed, its workers gone: in-process callers (tests) keep none
    }
  },
});

/** --prompt-ids (integers, as parsed), or --prompt encoded. */
function promptIds(text: string | undefined, ids: number[] | undefined, tokenizer: Tokenizer | undefined, vocab: number): number[] {
  if (ids !== undefined) {
    const bad = badTokenId(ids, vocab);
    if (bad !== undefined) throw new UsageError(`generate --prompt-ids: ${bad}`);
    if (ids.length === 0) throw new UsageError('generate --prompt-ids: give at least one id');
    return ids;
  }
  if (tokenizer === undefined) throw new UsageError('generate --prompt: this model has no tokenizer; give --tokenizer FILE or use --prompt-ids');
  const encoded = tokenizer.encode(text!, { bos: tokenizer.addsBosByDefault });
  if (encoded.length === 0) throw new UsageError('generate --prompt: the prompt encodes to no tokens');
  return encoded;
}

function warnAboutLength(policy: CachePolicy, trained: number, steps: number, promptLength: number): void {
  const total = steps === 0 ? Infinity : promptLength + steps;
  if (policy.kind === 'dense' && total > trained) {
    process.stderr.write(`warning: dense attention past the trained length ${trained}: memory grows and the model will break down (the paper's baseline)\n`);
  } else if (policy.kind !== 'dense' && policySpan(policy) > trained) {
    process.stderr.write(`warning: ${policyLabel(policy)} spans ${policySpan(policy)} entries, beyond the trained length ${trained}\n`);
  }
}

function statusLine(tokens: number, seconds: number, cacheSize: number, cacheBytes: number, policy: CachePolicy): string {
  const rss = process.memoryUsage().rss / 2 ** 20;
  return (
    `${tokens} tokens in ${seconds.toFixed(1)} s, ${(tokens / Math.max(seconds, 1e-9)).toFixed(1)} tok/s; ` +
    `${policyLabel(policy)} cache ${cacheSize} entries (${(cacheBytes / 2 ** 20).toFixed(2)} MiB); RSS ${rss.toFixed(0)} MiB`
  );
}
