// An experiment report: one folder holding report.md, which embeds every
// table and figure, and each table and figure again as its own files
// (NAME.md + NAME.json, NAME.svg + NAME.png). Every file goes to a temporary
// name first and is renamed when complete, so an interrupted run never
// leaves a half-written file; report.md is written last.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { type Cell, type Figure, markdownTable, type MarkdownTableOptions, writeFigure } from '../plot/index.js';

/** Write a file through a temporary name. */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

/** JSON with numbers rounded to 7 significant digits (float32 results carry no more) and NaN as null. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'number' ? (Number.isFinite(v) ? Number(v.toPrecision(7)) : null) : v), 1) + '\n';
}

/** A figure on disk, as experiments list it in their JSON: the PNG, its SVG, the PNG's size in pixels. */
export interface FigureFile {
  file: string;
  svg: string;
  width: number;
  height: number;
}

export class Report {
  private readonly parts: string[] = [];
  /** Files written so far, relative to the folder. */
  readonly files: string[] = [];

  constructor(readonly dir: string) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new UsageError(`--out: cannot create ${dir}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  }

  heading(text: string, level = 2): void {
    this.parts.push(`${'#'.repeat(level)} ${text}\n`);
  }

  text(paragraph: string): void {
    this.parts.push(paragraph.trim() + '\n');
  }

  /** A Markdown table in the report and in NAME.md. */
  table(name: string, header: string[], rows: Cell[][], options?: MarkdownTableOptions): string {
    const md = markdownTable(header, rows, options);
    this.write(`${name}.md`, md);
    this.parts.push(md);
    return md;
  }

  /** NAME.json: the numbers behind a section. */
  json(name: string, data: unknown): void {
    this.write(`${name}.json`, toJson(data));
  }

  /** NAME.svg and NAME.png, the PNG shown in the report; returns what was written. */
  async figure(name: string, figure: Figure, caption: string): Promise<FigureFile> {
    const file = await this.figureFile(name, figure);
    this.parts.push(`![${caption.replaceAll(']', ')')}](${name}.png)\n\n*${caption}* ([SVG](${name}.svg))\n`);
    return file;
  }

  /** NAME.svg and NAME.png written but not shown in report.md. */
  async figureFile(name: string, figure: Figure): Promise<FigureFile> {
    await writeFigure(join(this.dir, name), figure);
    this.files.push(`${name}.svg`, `${name}.png`);
    return { file: `${name}.png`, svg: `${name}.svg`, width: figure.width, height: figure.height };
  }

  /** The Markdown so far. */
  markdown(): string {
    return this.parts.join('\n');
  }

  /** report.md: a title, lines about the run, then everything added. */
  finish(title: string, about: string[]): string {
    const file = join(this.dir, 'report.md');
    writeFileAtomic(file, [`# ${title}\n`, about.map((l) => `- ${l}`).join('\n') + '\n', this.markdown()].join('\n'));
    return file;
  }

  private write(name: string, data: string): void {
    writeFileAtomic(join(this.dir, name), data);
    this.files.push(name);
  }
}
