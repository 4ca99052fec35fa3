// The cache-policy flags (eval, generate) and the one place a policy is
// built from them: the library's ArgumentError names an API argument
// (`windowSize`), which this re-words for the flag that fed it (`--window`).
import { CACHE_KINDS, type CachePolicy, policyFromName, type PolicyOptions } from '../cache/index.js';
import { ArgumentError, UsageError } from '../errors.js';
import type { FlagSpec, Flags } from './args.js';

export const cacheFlags: FlagSpec[] = [
  { name: 'sinks', type: 'int', value: 'S', min: 0, help: 'streaming: initial tokens kept (default 4)' },
  { name: 'window', type: 'int', value: 'W', min: 1, help: 'window, streaming, recompute: recent tokens kept (default: trained length, minus the sinks for streaming)' },
  { name: 'budget', type: 'int', value: 'C', min: 1, help: 'h2o, tova: entries a query sees, itself included (default: trained length)' },
  { name: 'recent', type: 'int', value: 'R', min: 0, help: 'h2o: newest tokens never evicted (default: half the budget)' },
];

/** The --cache flag, one policy or a list. */
export function cacheFlag(type: 'string' | 'strings', fallback: string, help: string): FlagSpec {
  return { name: 'cache', type, value: type === 'string' ? 'POLICY' : 'LIST', choices: CACHE_KINDS, default: fallback, help };
}

const FLAG_OF: Record<keyof PolicyOptions | 'kind', string> = {
  kind: 'cache',
  sinkCount: 'sinks',
  windowSize: 'window',
  budget: 'budget',
  recent: 'recent',
};

/** The policies named (duplicates dropped), with the settings of the cache flags. */
export function policiesFromFlags(command: string, names: readonly string[], flags: Flags, trainedLength: number): CachePolicy[] {
  const options: PolicyOptions = {
    sinkCount: flags.sinks as number | undefined,
    windowSize: flags.window as number | undefined,
    budget: flags.budget as number | undefined,
    recent: flags.recent as number | undefined,
  };
  return [...new Set(names)].map((name) => {
    try {
      return policyFromName(name, trainedLength, options);
    } catch (e) {
      if (!(e instanceof ArgumentError) || !(e.argument in FLAG_OF)) throw e;
      throw new UsageError(`${command} --${FLAG_OF[e.argument as keyof typeof FLAG_OF]}: ${name}: ${e.detail}`);
    }
  });
}
