// Errors a user can fix. Each carries one line that names the file, field or
// flag and says what was expected; the CLI prints it and exits with code 2.
// Anything else that escapes is a bug and keeps its stack trace.

export class StreamllmError extends Error {
  override name = 'StreamllmError';
}

/** An error already reported on stderr (by a child process): the CLI adds no line of its own, only exit code 2. */
export class ReportedError extends StreamllmError {
  override name = 'ReportedError';
}

/** A bad command-line flag or API argument. */
export class UsageError extends StreamllmError {
  override name = 'UsageError';
}

/**
 * A bad argument to a library function, named as the API names it
 * ("windowSize: expected an integer >= 1, got 0"). The CLI, which knows
 * which flag fed the argument, re-words it for the flag.
 */
export class ArgumentError extends UsageError {
  override name = 'ArgumentError';
  constructor(
    readonly argument: string,
    readonly detail: string,
  ) {
    super(`${argument}: ${detail}`);
  }
}

/** A file that cannot be read or is not what it claims to be. */
export class FileFormatError extends StreamllmError {
  override name = 'FileFormatError';
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: ${detail}`);
  }
}

/** A model configuration that the engine cannot run. */
export class ConfigError extends StreamllmError {
  override name = 'ConfigError';
}

/** A backend that was asked for but is not installed or failed to start. */
export class BackendError extends StreamllmError {
  override name = 'BackendError';
}

/** An output that cannot be written where it was asked for, or would replace something without --force. */
export class OutputError extends StreamllmError {
  override name = 'OutputError';
}

/** A size that does not fit in memory (the wasm heap, the largest typed array, the machine). */
export class ResourceError extends StreamllmError {
  override name = 'ResourceError';
}

/** NaN or infinity where a number was expected: in a checkpoint's weights or in a model's outputs. */
export class NonFiniteError extends StreamllmError {
  override name = 'NonFiniteError';
}
