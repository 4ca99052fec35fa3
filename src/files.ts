// Reading the files the engine consumes (configs, tokenizers, token lists,
// manifests, checkpoints), with the one-line error every reader gives: the
// file, then what went wrong.
import { openSync, readFileSync, readSync } from 'node:fs';
import { FileFormatError } from './errors.js';

export function readTextFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new FileFormatError(file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

/** Parsed JSON of `file`; `expected` names what the file should hold, for the error message. */
export function readJsonFile(file: string, expected?: string): unknown {
  const text = readTextFile(file);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FileFormatError(file, expected ? `expected ${expected}, but the file is not valid JSON` : `not valid JSON (${(e as Error).message})`);
  }
}

/** A descriptor for reading `file`; close it with closeSync. */
export function openForReading(file: string): number {
  try {
    return openSync(file, 'r');
  } catch (e) {
    throw new FileFormatError(file, `cannot open: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

/** Exactly `bytes` bytes at `position` (into `into` when given): a short read means the file is truncated. */
export function readAt(fd: number, file: string, bytes: number, position: number, into?: Uint8Array): Buffer {
  const buf = into ? Buffer.from(into.buffer, into.byteOffset, bytes) : Buffer.alloc(bytes);
  let got = 0;
  while (got < bytes) {
    const n = readSync(fd, buf, got, bytes - got, position + got);
    if (n === 0) throw new FileFormatError(file, `truncated: expected ${bytes} bytes at offset ${position}, got ${got}`);
    got += n;
  }
  return buf;
}
