// Rows to a Markdown table whose source is aligned too, for reports that are
// read as plain text as often as rendered:
//
//   | cache   | PPL   |
//   | :------ | ----: |
//   | 0 + 256 | 312.5 |
//   | 4 + 252 | 18.21 |
//
// Numbers are right-aligned and printed with a fixed number of decimals
// (integers as they are); null or undefined prints as an en dash.
import { fail } from './check.js';

export type Cell = string | number | null | undefined;

export interface MarkdownTableOptions {
  /** Decimals for non-integer numbers (default 2). */
  decimals?: number;
  /** Per-column alignment; default: right for columns of numbers, left otherwise. */
  align?: ('left' | 'right' | 'center')[];
}

export function markdownTable(header: string[], rows: Cell[][], options: MarkdownTableOptions = {}): string {
  const fn = 'markdownTable';
  if (!Array.isArray(header) || header.length === 0) fail(`${fn}: header`, 'expected at least one column name');
  const decimals = options.decimals ?? 2;
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > 20) {
    fail(`${fn}: decimals`, `expected an integer from 0 to 20, got ${decimals}`);
  }
  rows.forEach((row, r) => {
    if (!Array.isArray(row) || row.length !== header.length) {
      fail(`${fn}: rows[${r}]`, `has ${Array.isArray(row) ? row.length : 'no'} cells; expected ${header.length}, one per column`);
    }
  });
  if (options.align !== undefined && options.align.length !== header.length) {
    fail(`${fn}: align`, `has ${options.align.length} entries; expected ${header.length}, one per column`);
  }

  const show = (cell: Cell): string => {
    if (cell === null || cell === undefined) return '–';
    if (typeof cell === 'number') return Number.isInteger(cell) ? String(cell) : cell.toFixed(decimals);
    // a pipe would end the cell, a newline the row
    return String(cell).replaceAll('|', '\\|').replace(/\r?\n/g, ' ');
  };
  const text = [header.map(show), ...rows.map((row) => row.map(show))];
  const align = header.map((_, c) => {
    const given = options.align?.[c];
    if (given !== undefined) return given;
    const values = rows.map((row) => row[c]).filter((v) => v !== null && v !== undefined);
    return values.length > 0 && values.every((v) => typeof v === 'number') ? 'right' : 'left';
  });
  // at least 3 wide: the shortest valid rule with colons is ":-:"
  const width = header.map((_, c) => Math.max(3, ...text.map((row) => row[c]!.length)));

  const pad = (s: string, c: number): string => {
    const room = width[c]! - s.length;
    if (align[c] === 'right') return ' '.repeat(room) + s;
    if (align[c] === 'center') return ' '.repeat(Math.floor(room / 2)) + s + ' '.repeat(Math.ceil(room / 2));
    return s + ' '.repeat(room);
  };
  const line = (cells: string[]): string => `| ${cells.map(pad).join(' | ')} |`;
  const rule = width.map((w, c) => {
    if (align[c] === 'right') return '-'.repeat(w - 1) + ':';
    if (align[c] === 'center') return ':' + '-'.repeat(w - 2) + ':';
    return ':' + '-'.repeat(w - 1);
  });
  return [line(text[0]!), `| ${rule.join(' | ')} |`, ...text.slice(1).map(line)].join('\n') + '\n';
}
