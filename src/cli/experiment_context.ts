// Putting an experiment's context together from the command line.
import type { ExperimentContext, ExperimentSettings } from '../experiments/types.js';
import { isReportFolder, Report } from '../experiments/report.js';
import { checkOutputDir } from '../outputs.js';
import { sourceLabel, sourceTokens } from '../experiments/text_source.js';
import { UsageError } from '../errors.js';
import type { Tokenizer } from '../tokenizer/types.js';
import type { Placement } from '../model/pooled.js';
import { disposeModel } from '../model/weights.js';
import type { ExperimentFlags } from './experiment_flags.js';
import { defaultSource, manifestFile, openModel, textSource, type ZooChoice } from './model_inputs.js';
import { createProgress } from './progress.js';

/** The settings flags shared by reproduce, attn and start. */
export function settingsFromFlags(flags: ExperimentFlags): ExperimentSettings {
  return {
    tokens: flags.limit,
    recomputeSamples: flags['recompute-samples'],
    samples: flags.samples,
    length: flags.length,
    seed: flags.seed,
    perHead: flags['per-head'] === true,
    manifest: manifestFile(flags),
    window: flags.window,
    sinks: flags.sinks,
    sinkWindows: flags['sink-windows'],
    ...(flags['bos-first'] !== undefined ? { bosFirst: flags['bos-first'] } : {}),
    models: flags.models,
  };
}

/** --sinks must leave room for recent tokens in the cache; a BOS-first model (`bosFirst`: why it is one) needs a BOS token. */
export function checkSettings(
  settings: ExperimentSettings,
  command: string,
  trainedLength: number,
  tokenizer: Tokenizer | undefined,
  bosFirst: string | undefined = settings.bosFirst === true ? `${command} --bos-first` : undefined,
): void {
  const W = settings.window ?? trainedLength;
  if (settings.sinks !== undefined && settings.sinks >= W) {
    const which = settings.window !== undefined ? `--window ${W}` : `the trained length ${W} (the default --window)`;
    throw new UsageError(`${command} --sinks: ${settings.sinks} initial tokens leave no room for recent ones in a cache of ${which}; expected S < W`);
  }
  if (bosFirst !== undefined && tokenizer?.bosId === undefined) {
    throw new UsageError(`${bosFirst}: ${tokenizer === undefined ? 'no tokenizer to take BOS from; give --tokenizer FILE' : 'the tokenizer has no BOS token'}`);
  }
}

export interface ContextChoice {
  /** Without --model: the manifest's default model (the default), or its demo model when it names one. */
  zoo?: ZooChoice;
  /** Add to this report (its folder was checked when it was started) instead of starting one at `out`. */
  report?: Report;
  /** Where the model's products run (placementOf's answer: src/cli/placement.ts placementOfFlags; undefined: the tfjs path). */
  placement?: Placement | undefined;
}

/**
 * Model, text, settings and report folder, from the flags. The report folder
 * is checked first: it may be new, empty, or an earlier report (which the new
 * one replaces whole when it is finished); anything else needs --force.
 * The caller finishes the report or discards it, and disposes the model;
 * a context refused once its model is loaded disposes it (its tensors, a
 * pool's workers) before it throws.
 */
export async function contextFromFlags(
  flags: ExperimentFlags & { force?: boolean | undefined },
  command: string,
  out: string,
  choice: ContextChoice = {},
): Promise<ExperimentContext & { modelPath: string }> {
  if (choice.report === undefined) checkOutputDir(out, `${command} --out ${out}`, flags.force === true, isReportFolder);
  const given = textSource(flags, command); // before the model: a missing text fails fast
  // reproduce pretraining --models without --model: the first of them stands for the run
  const models = flags.models;
  const opened = await openModel(
    flags.model === undefined && models !== undefined && models.length > 0 ? { ...flags, model: models[0] } : flags,
    command,
    choice.zoo,
    choice.placement,
  );
  const { model, tokenizer, trainedOn } = opened;
  try {
    const source = defaultSource(given, opened);
    const settings = settingsFromFlags(flags);
    const bosFirst = settings.bosFirst ?? trainedOn?.bosFirst ?? false;
    const why = settings.bosFirst !== undefined ? `${command} --bos-first` : `${opened.label}: ${trainedOn?.from} says every training sample started with BOS`;
    checkSettings(settings, command, model.config.maxSeqLen, tokenizer, bosFirst ? why : undefined);
    const ids = sourceTokens(source, tokenizer, model.config.vocabSize, settings.tokens, { bosFirst: bosFirst ? tokenizer?.bosId : undefined });
    // (every experiment scores or attends the text; with fewer, curves ran to a RangeError, cache-size and initial-tokens to a figure of NaN)
    if (ids.length < 2) throw new UsageError(`${command}: ${sourceLabel(source)} gives ${ids.length} token${ids.length === 1 ? '' : 's'}, expected at least 2`);
    return {
      model,
      modelPath: opened.path, // (reproduce all loads it again for latency)
      modelLabel: opened.label,
      tokenizer,
      ...(trainedOn !== undefined ? { trainedOn } : {}),
      source,
      givenSource: given,
      ids,
      settings,
      report: choice.report ?? new Report(out),
      ...(choice.placement !== undefined ? { placement: choice.placement } : {}),
      progress: (label, total, unit) => createProgress(label, total, unit),
      log: (line) => process.stderr.write(line + '\n'),
    };
  } catch (e) {
    await disposeModel(model);
    throw e;
  }
}

/** The lines at the top of a report: model, text, backend, date, command, time. */
export function aboutRun(ctx: ExperimentContext, command: string, backend: string, seconds: number, timings: string[]): string[] {
  const c = ctx.model.config;
  const trained = ctx.trainedOn !== undefined ? `, trained on ${ctx.trainedOn.data}${ctx.trainedOn.bosFirst ? ' with BOS first in every sample' : ''}` : '';
  return [
    `model: ${ctx.modelLabel} (${c.layers} layers, dim ${c.dim}, ${c.heads} heads, trained length ${c.maxSeqLen}, ${ctx.model.config.sinkToken ? 'sink token' : c.softmax}${trained})`,
    `text: ${sourceLabel(ctx.source)}, ${ctx.ids.length} tokens`,
    `backend: ${backend}; ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}`,
    `command: \`streamllm ${command} ${process.argv.slice(3).join(' ')}\``,
    `time: ${seconds.toFixed(0)} s${timings.length ? ` (${timings.join(', ')})` : ''}`,
  ];
}
