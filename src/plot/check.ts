// Input checks shared by the figure functions. Each failure is a UsageError
// with one line that names the function, the field and what was expected,
// e.g. `lineChart: series[1] "window" y[17]: expected a finite number, got NaN`.
import { UsageError } from '../errors.js';

export function fail(where: string, detail: string): never {
  throw new UsageError(`${where}: ${detail}`);
}

export function checkText(where: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') fail(where, `expected a non-empty string, got ${show(value)}`);
  return value;
}

export function checkOptionalText(where: string, value: unknown): string | undefined {
  return value === undefined ? undefined : checkText(where, value);
}

export function checkFinite(where: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(where, `expected a finite number, got ${show(value)}`);
  return value;
}

export function checkPositive(where: string, value: unknown): number {
  const v = checkFinite(where, value);
  if (v <= 0) fail(where, `expected a number > 0, got ${v}`);
  return v;
}

/** A size in pixels or SVG units, or its default. */
export function checkSize(where: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  const v = checkPositive(where, value);
  if (!Number.isInteger(v)) fail(where, `expected a whole number, got ${v}`);
  return v;
}

export function checkNonEmptyArray<T>(where: string, value: ArrayLike<T> | undefined): ArrayLike<T> {
  if (value === undefined || value === null || typeof value.length !== 'number') fail(where, 'expected an array');
  if (value.length === 0) fail(where, 'expected at least one entry, got none');
  return value;
}

/** Names used as legend entries or categories: present, and each once. */
export function checkNames(where: string, names: readonly unknown[]): string[] {
  const seen = new Set<string>();
  return names.map((name, i) => {
    const n = checkText(`${where}[${i}]`, name);
    if (seen.has(n)) fail(`${where}[${i}]`, `"${n}" appears twice; names must be distinct`);
    seen.add(n);
    return n;
  });
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || value === undefined || value === null) return String(value);
  return typeof value;
}
