// The cache policies, one entry each: a policy's settings (a member of the
// CachePolicy union) and, in POLICIES, what it keeps in a line, how its
// settings default, its label and how many entries a query sees. The kinds
// the CLI accepts, policyLabel, policySpan and policyFromName all derive
// from here, so adding a policy is its settings and its entry in this file,
// its KVCache class in a file of its own, and a case in createCache
// (index.ts); the compiler names every place that misses it. This file
// loads no tensor library: the CLI lists and checks the kinds before tfjs.
import { ArgumentError } from '../errors.js';

/** The policies a KVCache realises: each keeps keys and values and says who sees which. */
export type KVCachePolicy =
  | { kind: 'dense' }
  | { kind: 'window'; windowSize: number }
  | { kind: 'streaming'; sinkCount: number; windowSize: number }
  /** Heavy hitters (Zhang et al. 2023): a query sees at most `budget` entries; the `recent` newest are never evicted. */
  | { kind: 'h2o'; budget: number; recent: number }
  /** TOVA (Oren et al. 2024): a query sees at most `budget` entries. */
  | { kind: 'tova'; budget: number };

/**
 * Sliding window with re-computation keeps token ids, not keys and values:
 * it is realised by RecomputeWindow (src/cache/recompute.ts), which
 * TokenStream drives with a scratch DenseCache per window.
 */
export type RecomputePolicy = { kind: 'recompute'; windowSize: number };

/** What a token of the stream sees: a KV-cache policy, or recompute. */
export type CachePolicy = KVCachePolicy | RecomputePolicy;

export type CacheKind = CachePolicy['kind'];

/** The settings a policy may take (undefined: its default). Library errors name these. */
export interface PolicyOptions {
  sinkCount?: number;
  windowSize?: number;
  budget?: number;
  recent?: number;
}

/** The setting that bounds a policy's cache, and its value. */
export interface CacheBound {
  setting: 'windowSize' | 'budget';
  value: number;
}

/** Everything about a policy but its storage. */
interface PolicyDefinition<P extends CachePolicy> {
  /** What a token sees, in a line. */
  summary: string;
  /** The policy from its settings (checked integers), each defaulting from the trained length. */
  make(trainedLength: number, options: PolicyOptions): P;
  /** A short label: "streaming(4+252)". */
  label(p: P): string;
  /** Entries a query sees, itself included (Infinity: unbounded). */
  span(p: P): number;
  /** The setting that bounds the cache (undefined: nothing does). */
  bound(p: P): CacheBound | undefined;
}

export const DEFAULT_SINK_COUNT = 4;

/**
 * One entry per kind (a Record, so a kind without one does not compile).
 * Every policy lets a query see the trained length by default, so that they
 * compare at equal cache size.
 */
const POLICIES: { readonly [K in CacheKind]: PolicyDefinition<Extract<CachePolicy, { kind: K }>> } = {
  dense: {
    summary: 'every earlier token',
    make: () => ({ kind: 'dense' }),
    label: () => 'dense',
    span: () => Infinity,
    bound: () => undefined,
  },
  window: {
    summary: 'the last W tokens',
    make: (trained, { windowSize }) => ({ kind: 'window', windowSize: windowSize ?? trained }),
    label: (p) => `window(${p.windowSize})`,
    span: (p) => p.windowSize,
    bound: (p) => ({ setting: 'windowSize', value: p.windowSize }),
  },
  streaming: {
    summary: 'S attention sinks + the last W tokens (StreamingLLM)',
    make: (trained, { sinkCount, windowSize }) => {
      const sinks = sinkCount ?? DEFAULT_SINK_COUNT;
      const window = windowSize ?? trained - sinks;
      if (window < 1) throw new ArgumentError('sinkCount', `${sinks} sinks leave no window in a trained length of ${trained}; give windowSize`);
      return { kind: 'streaming', sinkCount: sinks, windowSize: window };
    },
    label: (p) => `streaming(${p.sinkCount}+${p.windowSize})`,
    span: (p) => p.sinkCount + p.windowSize,
    bound: (p) => ({ setting: 'windowSize', value: p.windowSize }),
  },
  recompute: {
    summary: 'the last W tokens, re-run from scratch for every token',
    make: (trained, { windowSize }) => ({ kind: 'recompute', windowSize: windowSize ?? trained }),
    label: (p) => `recompute(${p.windowSize})`,
    span: (p) => p.windowSize,
    bound: (p) => ({ setting: 'windowSize', value: p.windowSize }),
  },
  h2o: {
    summary: 'heavy hitters + the most recent tokens, per layer and kv head (H2O)',
    make: (trained, { budget, recent }) => {
      const size = budget ?? trained;
      const newest = recent ?? Math.floor(size / 2);
      if (newest >= size) throw new ArgumentError('recent', `expected fewer than the budget ${size}, got ${newest}`);
      return { kind: 'h2o', budget: size, recent: newest };
    },
    label: (p) => `h2o(${p.budget - p.recent}+${p.recent})`, // heavy + recent
    span: (p) => p.budget,
    bound: (p) => ({ setting: 'budget', value: p.budget }),
  },
  tova: {
    summary: 'evict the entry the current query attends to least, per layer (TOVA)',
    make: (trained, { budget }) => ({ kind: 'tova', budget: budget ?? trained }),
    label: (p) => `tova(${p.budget})`,
    span: (p) => p.budget,
    bound: (p) => ({ setting: 'budget', value: p.budget }),
  },
};

/** The entry of p's kind, which takes p (POLICIES is keyed by kind; TypeScript cannot follow that through a union). */
function definitionOf<P extends CachePolicy>(p: P): PolicyDefinition<P> {
  return POLICIES[p.kind] as unknown as PolicyDefinition<P>;
}

export const CACHE_KINDS = Object.keys(POLICIES) as readonly CacheKind[];

/** One line per policy. */
export const CACHE_KIND_SUMMARIES: Readonly<Record<CacheKind, string>> = Object.fromEntries(CACHE_KINDS.map((k) => [k, POLICIES[k].summary])) as Record<
  CacheKind,
  string
>;

export function isCacheKind(kind: string): kind is CacheKind {
  return (CACHE_KINDS as readonly string[]).includes(kind);
}

export function isKVCachePolicy(p: CachePolicy): p is KVCachePolicy {
  return p.kind !== 'recompute';
}

/** A short human label: "streaming(4+252)", "h2o(128+128)" (heavy + recent). */
export function policyLabel(p: CachePolicy): string {
  return definitionOf(p).label(p);
}

/** Entries a query may see under the policy, itself included (Infinity for dense). */
export function policySpan(p: CachePolicy): number {
  return definitionOf(p).span(p);
}

/** The setting that bounds the policy's cache and its value; undefined for dense. */
export function policyBound(p: CachePolicy): CacheBound | undefined {
  return definitionOf(p).bound(p);
}

function checkInteger(name: keyof PolicyOptions, value: number | undefined, min: number): void {
  if (value !== undefined && !(Number.isInteger(value) && value >= min)) throw new ArgumentError(name, `expected an integer >= ${min}, got ${value}`);
}

/**
 * A policy from its name and optional settings. Every policy lets a query
 * see the trained length by default, so they compare at equal cache size:
 * window and recompute keep windowSize = trainedLength; streaming keeps
 * sinkCount = 4 and windowSize = trainedLength - sinkCount; h2o and tova a
 * budget of trainedLength, h2o's recent half of it. Errors name the
 * argument (`kind`, `sinkCount`, `windowSize`, `budget`, `recent`).
 */
export function policyFromName(kind: string, trainedLength: number, options: PolicyOptions = {}): CachePolicy {
  checkInteger('sinkCount', options.sinkCount, 0);
  checkInteger('windowSize', options.windowSize, 1);
  checkInteger('budget', options.budget, 1);
  checkInteger('recent', options.recent, 0);
  if (!isCacheKind(kind)) throw new ArgumentError('kind', `unknown policy '${kind}' (expected one of ${CACHE_KINDS.join(', ')})`);
  return POLICIES[kind].make(trainedLength, options);
}
