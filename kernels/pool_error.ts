// The worker pool's own error (kernels/pool.ts, kernels/pool_program.ts):
// a pool used after dispose(), a program or job it cannot run as given, or a
// pool that a failure left unusable (a worker that exited while it held a
// share of the work). One line naming what was expected. Its own class,
// not src/errors.ts's (kernels/ depends on nothing in src/); the CLI reports
// it as it reports a StreamllmError: the line, exit code 2.
export class WorkerPoolError extends Error {
  override name = 'WorkerPoolError';
}
