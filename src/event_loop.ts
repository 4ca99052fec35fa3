// Long loops (scoring, generating, training) await this between steps so
// that Ctrl-C, progress output and pending I/O get their turn.

/** Resolves after the I/O callbacks already queued have run. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
