// An experiment report: one folder holding report.md, which embeds every
// table and figure, and each table and figure again as its own files
// (NAME.md + NAME.json, NAME.svg + NAME.png). The folder is built beside its
// destination (src/outputs.ts) and swapped in whole by finish(), replacing
// any earlier report there: an interrupted or failed run leaves the earlier
// report as it was, never a folder whose figures come from two runs.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { StagedDir, writeFileAtomic } from '../outputs.js';
import { type Cell, type Figure, markdownTable, type MarkdownTableOptions, writeFigure } from '../plot/index.js';

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

/** Files a report folder holds (and temporaries an interrupted older version may have left); a folder of only these, with a report.md, is an earlier report that a new one may replace. */
const REPORT_FILE = /\.(md|json|svg|png|tmp)$/;

/** True when `dir` holds an earlier report (report.md and only tables, data and figures). */
export function isReportFolder(dir: string): boolean {
  const names = readdirSync(dir);
  return names.includes('report.md') && names.every((n) => REPORT_FILE.test(n) && statSync(join(dir, n)).isFile());
}

export class Report {
  private readonly parts: string[] = [];
  /** Files written so far, relative to the folder. */
  readonly files: string[] = [];
  private readonly staged: StagedDir;

  /** `dir`: where the report ends up (check it first with checkOutputDir and isReportFolder). */
  constructor(readonly dir: string) {
    this.staged = new StagedDir(dir);
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
    await writeFigure(join(this.staged.path, name), figure);
    this.files.push(`${name}.svg`, `${name}.png`);
    return { file: `${name}.png`, svg: `${name}.svg`, width: figure.width, height: figure.height };
  }

  /** The Markdown so far. */
  markdown(): string {
    return this.parts.join('\n');
  }

  /** report.md: a title, lines about the run, then everything added; then the folder goes into place. Returns report.md's path. */
  finish(title: string, about: string[]): string {
    writeFileAtomic(join(this.staged.path, 'report.md'), [`# ${title}\n`, about.map((l) => `- ${l}`).join('\n') + '\n', this.markdown()].join('\n'));
    this.staged.commit();
    return join(this.dir, 'report.md');
  }

  /** Drop a report that will not be finished (a no-op after finish). */
  discard(): void {
    this.staged.discard();
  }

  private write(name: string, data: string): void {
    writeFileAtomic(join(this.staged.path, name), data);
    this.files.push(name);
  }
}
