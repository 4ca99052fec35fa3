// The cache-policy flags (eval, generate) and the one place a policy is
// built from them: the library's ArgumentError names an API argument
// (`windowSize`), which this re-words for the flag that fed it (`--window`).
import { CACHE_KINDS, type CachePolicy, type PolicyOptions, policyFromName } from '../cache/policies.js';
import { ArgumentError, UsageError } from '../errors.js';
import { defineFlag, defineFlags } from './args.js';

export const cacheFlags = defineFlags([
  { name: 'sinks', type: 'int', value: 'S', min: 0, help: 'streaming: initial tokens kept (default 4)' },
  {
    name: 'window',
    type: 'int',
    value: 'W',
    min: 1,
    help: 'window, streaming, recompute: recent tokens kept (default: trained length, minus the sinks for streaming)',
  },
  { name: 'budget', type: 'int', value: 'C', min: 1, help: 'h2o, tova: entries a query sees, itself included (default: trained length)' },
  { name: 'recent', type: 'int', value: 'R', min: 0, help: 'h2o: newest tokens never evicted (default: half the budget)' },
]);

/** The settings the cache flags give, each undefined when not given. */
export interface CacheFlags {
  sinks?: number | undefined;
  window?: number | undefined;
  budget?: number | undefined;
  recent?: number | undefined;
}

/** The --cache flag, one policy or a list. */
export function cacheFlag<T extends 'string' | 'strings'>(type: T, fallback: string, help: string) {
  return defineFlag({ name: 'cache', type, value: type === 'string' ? 'POLICY' : 'LIST', choices: CACHE_KINDS, default: fallback, help });
}

const FLAG_OF: Record<keyof PolicyOptions | 'kind', string> = {
  kind: 'cache',
  sinkCount: 'sinks',
  windowSize: 'window',
  budget: 'budget',
  recent: 'recent',
};

/** The flag (without --) that gives a policy setting. */
export function flagOf(setting: keyof PolicyOptions): string {
  return FLAG_OF[setting];
}

function isPolicyArgument(argument: string): argument is keyof typeof FLAG_OF {
  return argument in FLAG_OF;
}

/** The one policy named, with the settings of the cache flags. */
export function policyFromFlags(command: string, name: string, flags: CacheFlags, trainedLength: number): CachePolicy {
  const [policy] = policiesFromFlags(command, [name], flags, trainedLength);
  return policy!; // one name, one policy
}

/** The policies named (duplicates dropped), with the settings of the cache flags. */
export function policiesFromFlags(command: string, names: readonly string[], flags: CacheFlags, trainedLength: number): CachePolicy[] {
  const options: PolicyOptions = { sinkCount: flags.sinks, windowSize: flags.window, budget: flags.budget, recent: flags.recent };
  return [...new Set(names)].map((name) => {
    try {
      return policyFromName(name, trainedLength, options);
    } catch (e) {
      if (!(e instanceof ArgumentError) || !isPolicyArgument(e.argument)) throw e;
      // the API's camelCase names in the detail ("give windowSize") as the flags that set them (budget and recent are words there)
      const detail = e.detail.replace(/\b(sinkCount|windowSize)\b/g, (setting) => `--${FLAG_OF[setting as keyof typeof FLAG_OF]}`);
      throw new UsageError(`${command} --${FLAG_OF[e.argument]}: ${name}: ${detail}`);
    }
  });
}
