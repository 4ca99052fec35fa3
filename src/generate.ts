// Autoregressive generation through a cache policy: prefill the prompt, then
// one token per step, for as long as asked (or forever).
import { type CachePolicy, policyLabel } from './cache/policies.js';
import { ArgumentError, NonFiniteError } from './errors.js';
import { yieldToEventLoop } from './event_loop.js';
import { firstNonFinite } from './finite.js';
import { checkSomeTokenIds, checkTokenIds } from './model/token_ids.js';
import { withSinkToken } from './model/transformer.js';
import type { Model } from './model/weights.js';
import type { Sampler } from './sample/sampler.js';
import { type GreedyChoice, TokenStream } from './stream.js';

export interface GenerateOptions {
  /** Tokens to generate; 0 means until stopped. */
  steps: number;
  /** Stop when the model emits one of these (run.c stops on BOS and EOS). */
  stopIds?: readonly number[];
  /** Checked before every step: return true to stop (Ctrl-C). */
  shouldStop?: () => boolean;
}

export interface GenerateStep {
  id: number;
  /** Tokens generated so far, this one included. */
  generated: number;
  stream: TokenStream;
}

/**
 * Between two turns of the event loop, at least this long (ms) of steps:
 * the turns let a signal handler (Ctrl-C: shouldStop) and the pool's
 * reports run. Each costs a decode step of a 15M model several tokens'
 * JavaScript (Node's timers and I/O poll, and whatever V8 queued for the
 * loop, cold in the CPU's caches after the weights streamed through them:
 * 370-510 µs in a process's first tokens, 90-190 later, 15M float32 on two
 * threads), so by time, not every so many tokens (it was every 16: a 15M q8
 * step of 0.6 ms turned it some 100 times a second). 200 ms measured no
 * faster: what the turns ran then ran between other tokens (bench/RESULTS.md,
 * "The caller's per-token path by piece").
 */
const TURN_MS = 50;

/**
 * Generate after `prompt` (at least one token). Yields each new token as it
 * is produced; the caller owns nothing and the stream is disposed at the end.
 * (An async generator as an object of its own, not an `async function*`:
 * see Generation.)
 */
export function generate(
  model: Model,
  policy: CachePolicy,
  prompt: readonly number[],
  sample: Sampler,
  options: GenerateOptions,
): AsyncGenerator<GenerateStep> {
  return new Generation(model, policy, prompt, sample, options);
}

/**
 * generate's steps. An `async function*` suspends at each yield and resumes
 * through promise jobs: per token the generator's resumption, its yield's
 * await and the caller's await, some 20 µs of a 15M decode step's
 * JavaScript in a process's first tokens (bench/cold_start.ts), as much as
 * the forward pass's own. Here a step runs inside next(), synchronously,
 * and next() returns it as a resolved promise: the caller's `for await`
 * waits one promise job. The async generator's protocol is kept: errors
 * reject next() (a bad prompt or a disposed model at the first), return()
 * and throw() end it (the stream disposed, as the generator's finally did),
 * a call made while another waits for its turn of the event loop runs
 * after it, and so does one made during a step (by its sampler or
 * shouldStop) after that step; a rejection nobody handles is reported.
 */
class Generation implements AsyncGenerator<GenerateStep, void, unknown> {
  private stream: TokenStream | undefined;
  /** The ids the next step feeds (the prompt, first; then the token generated before): the last token generated is never fed, so that no forward pass computes logits that nobody reads. */
  private ids: readonly number[] = [];
  private generated = 0;
  private ended = false;
  /** When the event loop last turned (performance.now). */
  private turned = 0;
  /** Settles (never rejects) when the last call that has not settled does: one that waits for a turn of the event loop, or a call queued after it. */
  private pending: Promise<unknown> | undefined;
  /** A call's synchronous part is running (a step, the sampler and shouldStop inside it). */
  private running = false;

  constructor(
    private readonly model: Model,
    private readonly policy: CachePolicy,
    private readonly prompt: readonly number[],
    private readonly sample: Sampler,
    private readonly options: GenerateOptions,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<GenerateStep, void>> {
    return this.call(this.stepCall);
  }

  /** step as call() takes it, made once (not a closure a token). */
  private readonly stepCall = () => this.step();

  return(value?: void | PromiseLike<void>): Promise<IteratorResult<GenerateStep, void>> {
    return this.call(() => {
      this.end();
      return Promise.resolve(value).then((v) => ({ done: true as const, value: v }));
    });
  }

  throw(e: unknown): Promise<IteratorResult<GenerateStep, void>> {
    return this.call(() => {
      this.end();
      throw e;
    });
  }

  /**
   * Run `call` now, or after the call still pending, or, made from inside a
   * step (a sampler or shouldStop calling return() or next()), after that
   * step, as an async generator queues a call made while it runs; its
   * result as a promise (a throw: rejected).
   */
  private call<R>(call: () => R | Promise<R>): Promise<R> {
    if (this.pending !== undefined) return this.track(this.pending.then(call));
    if (this.running) return this.track(Promise.resolve().then(call));
    let result: R | Promise<R>;
    this.running = true;
    try {
      result = call();
    } catch (e) {
      return Promise.reject(e);
    } finally {
      this.running = false;
    }
    return result instanceof Promise ? this.track(result) : Promise.resolve(result);
  }

  /**
   * `promise` as the call pending until it settles. The caller gets a
   * promise of its own: one that rejects with nobody to handle it is
   * reported (unhandledRejection), as an async generator's would be.
   */
  private track<R>(promise: Promise<R>): Promise<R> {
    const settled = promise.then(ignore, ignore);
    this.pending = settled;
    void settled.then(() => {
      if (this.pending === settled) this.pending = undefined;
    });
    return promise.then(same);
  }

  /** The next token; first, where TURN_MS has passed since the last, a turn of the event loop (so that a signal handler can run). */
  private step(): IteratorResult<GenerateStep, void> | Promise<IteratorResult<GenerateStep, void>> {
    if (this.ended) return { done: true, value: undefined };
    if (this.stream === undefined) {
      this.turned = performance.now();
      return this.produce();
    }
    if (this.stopAsked()) return this.end();
    if (performance.now() - this.turned < TURN_MS) return this.produce();
    return yieldToEventLoop().then(() => {
      this.turned = performance.now();
      if (this.ended) return { done: true, value: undefined }; // (return() or throw() ran meanwhile)
      return this.stopAsked() ? this.end() : this.produce();
    });
  }

  /** The caller's shouldStop; a throw from it ends the generation (the stream disposed) as a step's does. */
  private stopAsked(): boolean {
    try {
      return this.options.shouldStop?.() ?? false;
    } catch (e) {
      this.end();
      throw e;
    }
  }

  /** Feed the ids, pick the token: the step's result (done at the step limit or a stop id); a throw ends the generation. */
  private produce(): IteratorResult<GenerateStep, void> {
    try {
      let stream = this.stream;
      if (stream === undefined) {
        checkSomeTokenIds('prompt', this.prompt);
        const steps = this.options.steps;
        // (NaN, compared below with every count as false, would never end)
        if (!(Number.isInteger(steps) && steps >= 0)) throw new ArgumentError('steps', `expected a whole number >= 0 (0: until stopped), got ${steps}`);
        checkTokenIds('prompt', this.prompt, this.model.config.vocabSize);
        stream = this.stream = new TokenStream(this.model, this.policy);
        this.ids = withSinkToken(this.model.config, this.prompt);
      }
      const { steps, stopIds } = this.options;
      if (steps !== 0 && this.generated >= steps) return this.end();
      // The logits as an array, read before the next feed: no tensor for a
      // pooled model. A greedy sampler's pick, and the check, where they lie.
      const n = this.generated + 1;
      const id =
        this.sample.greedy === true
          ? greedyToken(stream.feedLastGreedy(this.ids), this.policy, n)
          : sampledToken(stream.feedLastValues(this.ids), this.sample, this.policy, n);
      this.generated = n;
      if (stopIds?.includes(id)) return this.end();
      this.ids = [id];
      return { done: false, value: { id, generated: n, stream } };
    } catch (e) {
      this.end();
      throw e;
    }
  }

  /** Done: the stream disposed (once). */
  private end(): IteratorResult<GenerateStep, void> {
    this.ended = true;
    const stream = this.stream;
    this.stream = undefined;
    stream?.dispose();
    return { done: true, value: undefined };
  }
}

// (Generation.track's handlers: its record of a call settling, and the caller's own promise of that call)
function ignore(): void {}
function same<T>(value: T): T {
  return value;
}

/** Generated token n, feedLastGreedy's pick; NonFiniteError when a logit is NaN or infinite. */
function greedyToken(choice: GreedyChoice, policy: CachePolicy, n: number): number {
  if (choice.finite) return choice.id;
  checkFinite(choice.logits, policy, n);
  // (unreachable unless the two checks disagree: the pool's SIMD pass saw a NaN or infinity that firstNonFinite does not find)
  throw new Error('generate: the greedy pick found a non-finite logit where firstNonFinite finds none');
}

/** Generated token n, sampled from the logits [vocab]; NonFiniteError when a logit is NaN or infinite. */
function sampledToken(logits: Float32Array, sample: Sampler, policy: CachePolicy, n: number): number {
  checkFinite(logits, policy, n);
  return sample(logits);
}

/** A NonFiniteError naming the first logit of generated token n that is NaN or infinite, if one is. */
function checkFinite(logits: Float32Array, policy: CachePolicy, n: number): void {
  const bad = firstNonFinite(logits);
  if (bad >= 0) {
    throw new NonFiniteError(
      `${policyLabel(policy)}: the model's logits for generated token ${n} are not finite (token ${bad}: ${logits[bad]}): NaN or overflow in the weights or activations`,
    );
  }
}
