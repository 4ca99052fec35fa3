// The documentation points the reader at things that must exist: files,
// headings, sections of bench/RESULTS.md, commands, npm scripts and flags.
// Readers follow these pointers to learn how the engine works, so a dead one
// is a defect; after many sessions of changes some go stale unnoticed. This
// file reads the documents and checks each kind of pointer against the
// repository as it is now. It reads files only (and asks each benchmark
// that a document shows with flags for its --help), no network.
//
// Documents checked: README.md, CONTRIBUTING.md, docs/*.md, weights/README.md
// and bench/tried/README.md (docs/sinks/*.md are generated reports).
//
// What is checked, and what is skipped on purpose:
// - links [text](path) and [text](path#anchor): the file exists; the anchor
//   is the GitHub slug of one of its headings. Web links are not followed.
// - repository paths (src/..., kernels/..., bench/..., test/..., scripts/...,
//   weights/..., docs/..., native/... with an extension, or a folder with
//   its slash), in code or prose: the file exists. dist/X.js is the build of
//   X.ts. Skipped: placeholders (a segment NAME or FILE: `kernels/NAME.ts`,
//   `dist/bench/NAME.js`); a pattern with * (`kernels/pool*.ts`,
//   `test/bad_input_*.test.ts`) must match at least one file; the paths in
//   GONE_ON_PURPOSE are history, named as such where they appear.
// - bench/RESULTS.md sections: `RESULTS MM-DD HH:MM` (docs/speed.md's tag),
//   `YYYY-MM-DD HH:MM` in the README and `YYYY-MM-DDTHH:MMZ` name the
//   section whose first time stamp (its date line) is that minute;
//   `RESULTS MM-DD`, 'Title' the section of that day whose title starts so;
//   `FILE.md, "Title"` and (RESULTS, "Title") a heading of that file.
//   The times listed after a tag (`RESULTS 11-30 23:40`, `23:42`) are of its
//   day. Skipped as ambiguous: other bare times ("dated 04:40:19 (rows
//   1-2), 04:41:40"), a date without a time, a range (2026-12-01 04:38-04:47).
// - commands in code (fenced blocks and `inline code`): `streamllm CMD` and
//   `node dist/src/cli/main.js CMD` name a subcommand, and each --flag is one
//   CMD declares (its spec: src/cli/main.ts exports COMMANDS); so for spans
//   such as `eval --csv`; the word after `reproduce` is one of its
//   experiments. A benchmark's flags (`streamllm bench NAME`, `node
//   dist/bench/NAME.js`, `bench/NAME.ts --flag`, `npm run bench -- ...`)
//   are those its --help names (from dist/: build first, as for every test).
//   A --flag written alone (`--recompute-samples`) is some command's or
//   benchmark's.
// - `npm run X`, `npm start`, `npm test`, anywhere: a script of package.json.
// - names of code in inline code (`placeModel`, `KVCache.blockLimit`,
//   `JOB_OP_NAMES`: camelCase, an inner capital, UPPER_SNAKE) occur in the
//   source.
// - repository paths in the comments of the code (src/, kernels/, bench/,
//   test/, scripts/, native/): the file exists; X.js there is a build's X.ts
//   ("its own kernels/huge_pages.js"); OTHER_PROJECTS_PATHS are not ours.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { COMMANDS } from '../src/cli/main.js';
import { ROOT } from './paths.js';

/** Paths the documents name as history: files that were removed or never kept, said so where they are named. */
const GONE_ON_PURPOSE: Record<string, string> = {
  'bench/decode_ab.ts': 'folded into bench/inproc_ab.ts at 18eb7f8; docs/speed.md names it with that commit',
  'kernels/pool_warm.ts': "bench/tried/worker_warmup.patch's new file, a change measured and not kept",
};

interface Doc {
  /** Repository-relative path, with forward slashes. */
  path: string;
  text: string;
}

function loadDocs(): Doc[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`);
  return ['README.md', 'CONTRIBUTING.md', ...docs, 'weights/README.md', 'bench/tried/README.md'].map((path) => ({
    path,
    text: readFileSync(join(ROOT, path), 'utf8'),
  }));
}

/** 1-based line number of a character offset. */
function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

/** The text with every fenced code block's content blanked (newlines kept, so offsets and lines stay). */
function withoutFences(text: string): string {
  return text.replace(/^```.*\n[\s\S]*?^```/gm, (block) => block.replace(/[^\n]/g, ' '));
}

/** The lines inside fenced code blocks, with their line numbers. */
function fencedLines(text: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let inside = false;
  text.split('\n').forEach((s, i) => {
    if (s.startsWith('```')) inside = !inside;
    else if (inside) out.push({ line: i + 1, text: s });
  });
  return out;
}

/** Inline code spans (`...`, possibly over a line break) outside fenced blocks, with their offsets. */
function inlineCode(text: string): { offset: number; code: string }[] {
  return [...withoutFences(text).matchAll(/`([^`]+)`/g)].map((m) => ({ offset: m.index, code: m[1]!.replace(/\s+/g, ' ') }));
}

// ---- headings and GitHub's anchors ----

/** GitHub's anchor for a heading: its text lowercased, punctuation dropped, each space a '-' (github-slugger's rule). */
function githubSlug(heading: string): string {
  const text = heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // a link's text
    .replace(/[`*]/g, ''); // code and emphasis marks are not part of the text
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor a Markdown file's headings make; a repeated slug gets -1, -2, ... as on GitHub. */
function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const m of withoutFences(markdown).matchAll(/^#{1,6} +(.+?) *#* *$/gm)) {
    const slug = githubSlug(m[1]!);
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

t.test('githubSlug gives the anchors GitHub gives these headings', async (t) => {
  t.equal(githubSlug('What the shipped models show'), 'what-the-shipped-models-show');
  t.equal(githubSlug('Score-based eviction: H2O and TOVA'), 'score-based-eviction-h2o-and-tova');
  t.equal(githubSlug('Lever 1: threads (the worker pool)'), 'lever-1-threads-the-worker-pool');
  t.equal(githubSlug('Build, test, lint'), 'build-test-lint');
  t.equal(
    githubSlug('Every core, one thread, 8-bit weights (`--threads`, `--weights q8`, `--products`)'),
    'every-core-one-thread-8-bit-weights---threads---weights-q8---products',
  );
  t.same([...headingAnchors('# A\n## Notes\n```\n# not a heading\n```\n## Notes\n')], ['a', 'notes', 'notes-1']);
});

// ---- files ----

/** Every file of the repository (its own, not node_modules, dist/ or .git), by repository-relative path. */
function repositoryFiles(): string[] {
  const skip = new Set(['node_modules', 'dist', '.git', 'build', 'coverage', '.tap', 'out', 'runs']);
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      if (skip.has(entry.name)) continue;
      const path = dir === '' ? entry.name : `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else out.push(path);
    }
  };
  walk('');
  return out;
}

/** A path pattern with * (within a folder) and ** (any folders) as a regular expression. */
function globRegex(pattern: string): RegExp {
  const body = pattern
    .split(/(\*\*\/|\*)/)
    .map((part) => (part === '**/' ? '(?:.*/)?' : part === '*' ? '[^/]*' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`);
}

/** The source file a path names: a build output under dist/ is its TypeScript source. */
function sourceOf(path: string): string {
  return path.startsWith('dist/') ? path.slice('dist/'.length).replace(/\.js$/, '.ts') : path;
}

/** Why a repository path written in a document names nothing, or undefined when it names a file (or is skipped). */
function missingPath(path: string, files: readonly string[]): string | undefined {
  if (/(^|\/)(NAME|FILE)(\.|\/|$)/.test(path)) return undefined; // a placeholder
  const source = sourceOf(path);
  if (source in GONE_ON_PURPOSE) return undefined;
  if (source.includes('*')) {
    const re = globRegex(source);
    return files.some((f) => re.test(f)) ? undefined : `no file matches ${path}`;
  }
  return existsSync(join(ROOT, source)) ? undefined : source === path ? `no file ${path}` : `no file ${source} (for ${path})`;
}

/** A folder written with its slash: src/cache/, kernels/simd/. */
const REPO_FOLDER = /(?<![\w./-])((?:src|kernels|bench|test|scripts|weights|docs|native)\/(?:[\w.-]+\/)*)(?![\w*])/g;
const REPO_PATH = /(?<![\w./-])((?:dist\/)?(?:src|kernels|bench|test|scripts|weights|docs|native)\/[\w./*-]*\.[A-Za-z]\w*)/g;

t.test('repository paths in the documents name files that exist', async (t) => {
  const files = repositoryFiles();
  const failures: string[] = [];
  let checked = 0;
  for (const doc of loadDocs()) {
    for (const m of doc.text.matchAll(REPO_PATH)) {
      checked++;
      const why = missingPath(m[1]!, files);
      if (why !== undefined) failures.push(`${doc.path}:${lineAt(doc.text, m.index)}: ${why}`);
    }
    for (const m of doc.text.matchAll(REPO_FOLDER)) {
      checked++;
      if (!existsSync(join(ROOT, m[1]!))) failures.push(`${doc.path}:${lineAt(doc.text, m.index)}: no folder ${m[1]}`);
    }
  }
  t.same(failures, []);
  t.ok(checked > 150, `${checked} paths checked`);
  for (const path of Object.keys(GONE_ON_PURPOSE)) t.notOk(existsSync(join(ROOT, path)), `${path} is gone (were it back, it would come off GONE_ON_PURPOSE)`);
});

t.test('links: each file exists and each #anchor is a heading of it', async (t) => {
  const failures: string[] = [];
  let checked = 0;
  for (const doc of loadDocs()) {
    for (const m of withoutFences(doc.text).matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/.test(target)) continue; // https:, mailto:
      checked++;
      const where = `${doc.path}:${lineAt(doc.text, m.index)}`;
      const [file, anchor] = target.split('#') as [string, string | undefined];
      // (a link is relative to the document's folder)
      const path = file === '' ? doc.path : normalize(join(dirname(doc.path), decodeURIComponent(file))).replaceAll('\\', '/');
      if (path.startsWith('..') || !existsSync(join(ROOT, path))) {
        failures.push(`${where}: link to ${target}: no file ${path}`);
        continue;
      }
      if (anchor !== undefined && !(path.endsWith('.md') && headingAnchors(readFileSync(join(ROOT, path), 'utf8')).has(anchor))) {
        failures.push(`${where}: link to ${target}: ${path} has no heading #${anchor}`);
      }
    }
  }
  t.same(failures, []);
  t.ok(checked > 10, `${checked} links checked`);
});

// ---- bench/RESULTS.md sections ----

interface ResultsSection {
  title: string;
  /** The minute its date line starts at, as 'MM-DDTHH:MM'; undefined for a section without one. */
  start: string | undefined;
}

/**
 * bench/RESULTS.md's `## ` sections, each with the start of the first time stamp in it: its date line
 * ("- date: 2026-12-01T04:40:19Z", "date 2026-12-01T03:13Z-03:33Z", or a range on its machine line).
 */
function resultsSections(): ResultsSection[] {
  const text = readFileSync(join(ROOT, 'bench', 'RESULTS.md'), 'utf8');
  return text
    .split(/^## /m)
    .slice(1)
    .map((section) => {
      const date = /\b\d{4}-(\d\d-\d\dT\d\d:\d\d)/.exec(section);
      return { title: section.slice(0, section.indexOf('\n')), start: date?.[1] };
    });
}

/** The references to bench/RESULTS.md sections in a document: `{ offset, minute }` ('MM-DDTHH:MM') or `{ offset, day, title }`. */
function resultsReferences(doc: Doc): { offset: number; minute?: string; day?: string; title?: string }[] {
  const refs: { offset: number; minute?: string; day?: string; title?: string }[] = [];
  // RESULTS 12-01 03:07 (possibly over a line break)
  for (const m of doc.text.matchAll(/RESULTS\s+(\d\d-\d\d)\s+(\d\d:\d\d)/g)) refs.push({ offset: m.index, minute: `${m[1]}T${m[2]}` });
  // `RESULTS 11-30 23:40`, `23:42` and `23:47`: the times after a tag are of its day
  for (const m of doc.text.matchAll(/RESULTS\s+(\d\d-\d\d)\s+\d\d:\d\d`((?:(?:,|\s+and)\s+`\d\d:\d\d`)+)/g)) {
    for (const time of m[2]!.matchAll(/\d\d:\d\d/g)) refs.push({ offset: m.index, minute: `${m[1]}T${time[0]}` });
  }
  // `RESULTS 12-01`, 'Tiny models'
  for (const m of doc.text.matchAll(/RESULTS\s+(\d\d-\d\d)`?,\s+'([^']+)'/g)) refs.push({ offset: m.index, day: m[1]!, title: m[2]!.replace(/\s+/g, ' ') });
  // 2026-11-30T23:40Z, anywhere
  for (const m of doc.text.matchAll(/\b\d{4}-(\d\d-\d\dT\d\d:\d\d)(?::\d\d)?Z(?!-)/g)) refs.push({ offset: m.index, minute: m[1]! });
  // 2026-12-01 04:40 in the README, which names its figures' sections so; not a range (04:38-04:47)
  if (doc.path === 'README.md') {
    for (const m of doc.text.matchAll(/\b\d{4}-(\d\d-\d\d)\s+(\d\d:\d\d)(?::\d\d)?(?![-\d:])/g)) refs.push({ offset: m.index, minute: `${m[1]}T${m[2]}` });
  }
  return refs;
}

t.test('RESULTS tags and dated figures name a section of bench/RESULTS.md', async (t) => {
  const sections = resultsSections();
  const failures: string[] = [];
  let checked = 0;
  for (const doc of loadDocs()) {
    if (doc.path === 'bench/tried/README.md') continue; // names sections by title and day only
    for (const ref of resultsReferences(doc)) {
      checked++;
      const where = `${doc.path}:${lineAt(doc.text, ref.offset)}`;
      if (ref.minute !== undefined && !sections.some((s) => s.start === ref.minute)) {
        failures.push(`${where}: no bench/RESULTS.md section dated ${ref.minute.replace('T', ' ')}`);
      }
      if (ref.title !== undefined && !sections.some((s) => s.start?.startsWith(ref.day!) && s.title.replace(/\s+/g, ' ').startsWith(ref.title!))) {
        failures.push(`${where}: no bench/RESULTS.md section of ${ref.day} titled '${ref.title}...'`);
      }
    }
  }
  t.same(failures, []);
  t.ok(checked > 40, `${checked} references to bench/RESULTS.md checked`);
});

/** The headings of a Markdown file (bench/RESULTS.md's `## ` sections among them), whitespace squeezed. */
function headings(path: string): string[] {
  return [...withoutFences(readFileSync(join(ROOT, path), 'utf8')).matchAll(/^#{1,6} +(.+)$/gm)].map((m) => m[1]!.replace(/\s+/g, ' '));
}

t.test('a section named in quotes after its file is a heading of that file', async (t) => {
  // docs/speed.md, "Tried, measured, no gain"; (`RESULTS`, "Cold start: ..."); `bench/RESULTS.md`, 'Float32 SwiGLU ...'
  const failures: string[] = [];
  let checked = 0;
  for (const doc of loadDocs()) {
    for (const m of doc.text.matchAll(/`?([\w./-]+\.md|RESULTS)`?[,:]? (?:"([^"]+)"|'([^']+)')/g)) {
      const named = m[1] === 'RESULTS' || m[1] === 'RESULTS.md' ? 'bench/RESULTS.md' : m[1]!;
      const path = existsSync(join(ROOT, named)) ? named : join(dirname(doc.path), named);
      if (!existsSync(join(ROOT, path))) continue; // (the path check names it)
      checked++;
      const title = (m[2] ?? m[3]!).replace(/\s+/g, ' ').replaceAll('\\|', '|');
      if (!headings(path).some((h) => h.startsWith(title)))
        failures.push(`${doc.path}:${lineAt(doc.text, m.index)}: ${path} has no heading starting '${title}'`);
    }
  }
  t.same(failures, []);
  t.ok(checked > 3, `${checked} quoted sections checked`);
});

// ---- commands, npm scripts and flags ----

interface CommandUse {
  line: number;
  /** The words of the command line, brackets and a trailing # comment removed. */
  words: string[];
}

/** Command lines in a document's code: each fenced line, each inline code span, and each span inside a fenced line. */
function codeCommandLines(doc: Doc): CommandUse[] {
  const clean = (s: string): string[] =>
    s
      .replace(/\s#\s.*$/, '')
      .replace(/[[\]`]/g, ' ')
      .split(/\s+/)
      .filter((w) => w !== '');
  return [
    ...fencedLines(doc.text).flatMap((l) =>
      [l.text, ...[...l.text.matchAll(/`([^`]+)`/g)].map((m) => m[1]!)].map((code) => ({ line: l.line, words: clean(code) })),
    ),
    ...inlineCode(doc.text).map((c) => ({ line: lineAt(doc.text, c.offset), words: clean(c.code) })),
  ];
}

/** A subcommand or a benchmark, the flags given to it, and for a subcommand the word after its name, when not a flag (`reproduce curves`). */
type Target = { kind: 'command' | 'bench'; name: string; flags: string[]; argument?: string };

/** What a command line runs, a subcommand or a benchmark, with the flags given to it. */
function targetOf(words: string[]): Target | undefined {
  const flagsIn = (ws: string[]): string[] => ws.filter((w) => /^--[a-z]/.test(w)).map((w) => w.slice(2).replace(/=.*$/, ''));
  const [w0, w1, w2] = words;
  if (w0 === 'npm' && w1 === 'run' && w2 === 'bench') return { kind: 'bench', name: 'decode', flags: words[3] === '--' ? flagsIn(words.slice(4)) : [] };
  const bench = /^(?:dist\/)?bench\/(\w+)\.[jt]s$/.exec((w0 === 'node' ? w1 : w0) ?? '');
  if (bench !== null && bench[1] !== 'NAME' && !(`bench/${bench[1]}.ts` in GONE_ON_PURPOSE)) return { kind: 'bench', name: bench[1]!, flags: flagsIn(words) };
  let rest: string[] | undefined;
  if (w0 === 'streamllm') rest = words.slice(1);
  else if (w0 === 'node' && w1 === 'dist/src/cli/main.js') rest = words.slice(2);
  else if (w0 !== undefined && w1?.startsWith('--') && COMMANDS.some((c) => c.name === w0)) rest = words; // `eval --csv`
  if (rest === undefined || rest[0] === undefined || /^[A-Z]+$/.test(rest[0])) return undefined; // (streamllm COMMAND --help)
  if (rest[0] === 'bench' && rest[1] !== undefined && rest[1] !== 'NAME') return { kind: 'bench', name: rest[1], flags: flagsIn(rest.slice(2)) };
  const argument = rest[1] !== undefined && /^[a-z][\w-]*$/.test(rest[1]) ? rest[1] : undefined;
  return { kind: 'command', name: rest[0], flags: flagsIn(rest.slice(1)), ...(argument === undefined ? {} : { argument }) };
}

t.test('npm scripts named in the documents exist in package.json', async (t) => {
  const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  const failures: string[] = [];
  let checked = 0;
  for (const doc of loadDocs()) {
    // (anywhere, prose and comments included: `npm install` is npm's own and not checked)
    for (const m of doc.text.matchAll(/\bnpm (?:run ([\w:.-]*\w)|(start|test)\b)/g)) {
      checked++;
      const name = m[1] ?? m[2]!;
      if (!(name in scripts)) failures.push(`${doc.path}:${lineAt(doc.text, m.index)}: package.json has no script '${name}'`);
    }
  }
  t.same(failures, []);
  t.ok(checked > 20, `${checked} npm scripts checked`);
});

const execFileAsync = promisify(execFile);

/** A benchmark's --help, from its build (each answers without loading tfjs); undefined when it has no build. */
async function benchHelp(name: string): Promise<string | undefined> {
  const script = join(ROOT, 'dist', 'bench', `${name}.js`);
  if (!existsSync(script)) return undefined;
  return (await execFileAsync(process.execPath, [script, '--help'], { encoding: 'utf8', timeout: 30_000 })).stdout;
}

t.test('commands and flags shown in the documents exist', async (t) => {
  const uses = loadDocs().flatMap((doc) =>
    codeCommandLines(doc).flatMap((use) => {
      const target = targetOf(use.words);
      return target === undefined ? [] : [{ where: `${doc.path}:${use.line}`, target }];
    }),
  );
  const benches = [...new Set(uses.flatMap(({ target }) => (target.kind === 'bench' ? [target.name] : [])))];
  const helps = new Map(await Promise.all(benches.map(async (name) => [name, await benchHelp(name)] as const)));
  const failures: string[] = [];
  for (const { where, target } of uses) {
    if (target.kind === 'command') {
      const command = COMMANDS.find((c) => c.name === target.name);
      if (command === undefined) failures.push(`${where}: streamllm has no command '${target.name}'`);
      else {
        for (const flag of target.flags) {
          if (flag !== 'help' && !command.flags.some((f) => f.name === flag)) failures.push(`${where}: streamllm ${target.name} has no flag --${flag}`);
        }
        const choices = command.positional?.choices;
        if (target.argument !== undefined && choices !== undefined && !choices.includes(target.argument)) {
          failures.push(`${where}: streamllm ${target.name} has no ${command.positional!.name} '${target.argument}'`);
        }
      }
    } else {
      const help = helps.get(target.name);
      if (help === undefined) failures.push(`${where}: no benchmark bench/${target.name}.ts (or it is not built)`);
      else {
        for (const flag of target.flags) {
          if (!new RegExp(`--${flag}(?![\\w-])`).test(help)) failures.push(`${where}: bench ${target.name} has no flag --${flag} (its --help)`);
        }
      }
    }
  }
  t.same(failures, []);
  t.ok(uses.length > 100, `${uses.length} commands checked`);
});

/** Flags of other programs that the documents quote (node's); the reference implementation's have underscores. */
const OTHER_PROGRAMS_FLAGS = new Set(['no-wasm-dynamic-tiering', 'no-liftoff', 'use-std-math-pow']);

t.test('every --flag written in code is a flag of some command or benchmark', async (t) => {
  // (`--recompute-samples` in a sentence: which command is said in prose, so this only asks that some command has it;
  // a benchmark's flags are those its source names, its usage text)
  const known = new Set([...COMMANDS.flatMap((c) => c.flags.map((f) => f.name)), 'help', ...OTHER_PROGRAMS_FLAGS]);
  for (const file of readdirSync(join(ROOT, 'bench')).filter((f) => f.endsWith('.ts'))) {
    for (const m of readFileSync(join(ROOT, 'bench', file), 'utf8').matchAll(/--([a-z][a-z0-9-]*)/g)) known.add(m[1]!);
  }
  const failures: string[] = [];
  let checked = 0;
  for (const doc of loadDocs()) {
    for (const use of codeCommandLines(doc)) {
      for (const word of use.words) {
        const flag = /^--([a-z][a-z0-9-]*)(?:=.*)?$/.exec(word)?.[1];
        if (flag === undefined) continue;
        checked++;
        if (!known.has(flag)) failures.push(`${doc.path}:${use.line}: --${flag} is no command's or benchmark's flag`);
      }
    }
  }
  t.same(failures, []);
  t.ok(checked > 200, `${checked} flags checked`);
});

// ---- names of code ----

/** Every word of the project's source (TypeScript, WebAssembly text, C, its configuration), for looking names up. */
function sourceWords(files: readonly string[]): Set<string> {
  const words = new Set<string>();
  for (const file of files) {
    if (!/^(src|kernels|bench|test|scripts|native)\/.*\.(ts|wat|c)$|^[^/]+\.(json|js)$/.test(file)) continue;
    for (const w of readFileSync(join(ROOT, file), 'utf8').match(/[A-Za-z_]\w*/g) ?? []) words.add(w);
  }
  return words;
}

/** The platform's objects whose members the documents may name (`WebAssembly.instantiateStreaming`, `Atomics.wait`): not ours to find. */
const PLATFORM_MEMBER = /\b(?:WebAssembly|Atomics|Math|Number|Object|JSON|Promise|Buffer|process|performance|tf|v8|os)\.$/;

/** Whether a word is written as code names are (camelCase, PascalCase with an inner capital, UPPER_SNAKE), not as English is. */
function looksLikeCodeName(word: string): boolean {
  return /[a-z][A-Z]/.test(word) || /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$/.test(word);
}

t.test('names of code in the documents (placeModel, KVCache.blockLimit, JOB_OP_NAMES) occur in the source', async (t) => {
  const words = sourceWords(repositoryFiles());
  const failures: string[] = [];
  let checked = 0;
  for (const doc of loadDocs()) {
    const spans = [
      ...inlineCode(doc.text).map((c) => ({ line: lineAt(doc.text, c.offset), code: c.code })),
      ...fencedLines(doc.text).map((l) => ({ line: l.line, code: l.text })),
    ];
    for (const { line, code } of spans) {
      for (const m of code.matchAll(/[A-Za-z_]\w*/g)) {
        const name = m[0];
        if (!looksLikeCodeName(name) || PLATFORM_MEMBER.test(code.slice(0, m.index))) continue;
        checked++;
        if (!words.has(name)) failures.push(`${doc.path}:${line}: ${name} is nowhere in the source`);
      }
    }
  }
  t.same(failures, []);
  t.ok(checked > 100, `${checked} names checked`);
});

// ---- paths in the code's comments ----

/** Paths of other projects that comments quote (V8's source, where fdlibm's cos and sin come from). */
const OTHER_PROJECTS_PATHS = new Set(['src/base/ieee754.cc']);

/** The comment part of each line of a source file (after //, /*, ;; or a leading *), with line numbers. */
function commentLines(source: string): { line: number; text: string }[] {
  return source.split('\n').flatMap((s, i) => {
    const at = s.search(/\/\/|\/\*|;;|^\s*\*/);
    return at < 0 ? [] : [{ line: i + 1, text: s.slice(at) }];
  });
}

t.test("paths in the code's comments name files that exist", async (t) => {
  const files = repositoryFiles();
  const failures: string[] = [];
  let checked = 0;
  for (const file of files.filter((f) => /^(src|kernels|bench|test|scripts|native)\/.*\.(ts|wat|c)$/.test(f))) {
    for (const { line, text } of commentLines(readFileSync(join(ROOT, file), 'utf8'))) {
      for (const m of text.matchAll(REPO_PATH)) {
        const path = m[1]!;
        if (OTHER_PROJECTS_PATHS.has(path)) continue;
        checked++;
        // (a build's module, as bench/common.ts and the A/B benches load them from another dist/)
        const why = path.endsWith('.js') && !path.startsWith('dist/') ? missingPath(path.replace(/\.js$/, '.ts'), files) : missingPath(path, files);
        if (why !== undefined) failures.push(`${file}:${line}: ${why}`);
      }
    }
  }
  t.same(failures, []);
  t.ok(checked > 300, `${checked} paths checked`);
});
