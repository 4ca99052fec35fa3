// The executable itself, once per command: the entry point, exit code 2 and
// the one line on stderr for an argument error, found before any model or
// tensor library loads. Everything else about the commands runs in process
// (runCliInProcess); eval's output on success and generate's Ctrl-C are
// spawned in their own files. Also: what the entry point imports, so that
// --help and argument errors stay free of tfjs.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { orphans } from '../scripts/prune_dist.js';
import { runCli } from './helpers.js';
import { ROOT, tempDir } from './paths.js';

t.test('every command: an argument error is one line on stderr, exit 2, nothing on stdout', async (t) => {
  const cases: [string[], string][] = [
    [['start', '--limit', '1'], 'start --limit: must be >= 2, got 1'],
    [['generate', '--prompt-ids', '1'], 'generate: --model is required (see streamllm generate --help)'],
    [['eval', '--model', 'm.bin', '--window', 'ten'], "eval --window: expected an integer, got 'ten'"],
    [['attn', '--length', '4'], 'attn --length: must be >= 5, got 4'],
    [
      ['reproduce', 'fig99'],
      "reproduce: unknown experiment 'fig99' (expected one of attention, curves, initial-tokens, newline-sinks, cache-size, latency, pretraining, all)",
    ],
    [['train', '--steps', '1', '--stpes', '2'], 'train: unknown flag --stpes (see streamllm train --help)'],
    [['train-tokenizer', '--vocab', '10'], 'train-tokenizer --vocab: must be >= 257, got 10'],
    [['publish', '--name', 'x'], 'publish: --run is required (see streamllm publish --help)'],
    [['init', '--dim', '16'], 'init: --out is required (see streamllm init --help)'],
    [
      ['bench', 'nothing'],
      "bench: expected a benchmark name (decode, profile_decode, cold_start, load_paths, step_phases, streaming, endless, hf_load, big_q8, q8_accuracy, f32_product, builds_ab, inproc_ab, pool_program, plot, train, profile_train), got 'nothing'",
    ],
    [['sink-emergence', '--window', '1'], 'sink-emergence --window: must be >= 2, got 1'],
    [['nosuch'], "unknown command 'nosuch' (commands: start, generate, eval, attn, reproduce, sink-emergence, train, train-tokenizer, publish, init, bench)"],
  ];
  for (const [args, message] of cases) {
    const r = runCli(args);
    t.equal(r.status, 2, args.join(' '));
    t.equal(r.stderr, `streamllm: ${message}\n`);
    t.equal(r.stdout, '');
  }
  const help = runCli(['--help']);
  t.equal(help.status, 0);
  t.match(help.stdout, /^streamllm: StreamingLLM/);
  t.match(help.stdout, /^ {2}train-tokenizer {4}train a byte-level BPE tokenizer/m);
  t.equal(runCli([]).status, 2, 'no command: the help, exit 2');
});

/** The project files `file` imports at run time (type-only imports are erased), by relative path. */
function staticImports(file: string): string[] {
  const source = readFileSync(file, 'utf8');
  // (`import 'x';` too: a side-effect import loads a package all the same)
  const specs = [...source.matchAll(/^(?:import|export)\s+(?:(?!type\s)[^;]*?\s+from\s+)?'([^']+)';/gms)].map((m) => m[1]!);
  return specs.map((s) => (s.startsWith('.') ? resolve(dirname(file), s.replace(/\.js$/, '.ts')) : s));
}

/** The project files `entry` reaches through static imports (itself included), and the packages it imports, node: built-ins aside. */
function staticGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const stack = [entry];
  while (stack.length > 0) {
    const file = stack.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    for (const spec of staticImports(file)) {
      if (spec.startsWith('/')) stack.push(spec);
      else if (!spec.startsWith('node:')) packages.add(spec);
    }
  }
  return { files, packages };
}

t.test('the entry point and the command definitions import no package, model loader, forward pass or worker pool', async (t) => {
  const { files: seen, packages } = staticGraph(join(ROOT, 'src/cli/main.ts'));
  t.same([...packages], [], 'no package is imported before a command runs');
  const files = [...seen].map((f) => relative(ROOT, f));
  t.ok(files.includes('src/cli/eval.ts') && files.includes('src/cli/train.ts'), `the commands are reached (${files.length} files)`);
  t.notOk(files.includes('src/model/load.ts') || files.includes('src/model/transformer.ts'), 'neither the model loader nor the forward pass');
  t.ok(files.includes('src/cli/placement_flags.ts'), 'the --threads flag is reached');
  t.same(
    files.filter((f) => ['kernels/pool.ts', 'kernels/pool_ops.ts', 'kernels/pool_walker.ts'].includes(f)),
    [],
    'nor the worker pool (pool.ts; pool_ops.ts and pool_walker.ts carry its wasm modules)',
  );
});

t.test('every compiled test has its source: tap runs dist/test/, where tsc never deletes a file', async (t) => {
  const stale = orphans(join(ROOT, 'dist'), ROOT).filter((f) => f.startsWith(join(ROOT, 'dist', 'test')) && f.endsWith('.js'));
  t.same(
    stale.map((f) => relative(ROOT, f)),
    [],
    'run `npm run build` (tsc, then scripts/prune_dist.ts removes what tsc left from a renamed or deleted file)',
  );
});

t.test('every benchmark answers --help without running, and records nothing', async (t) => {
  const results = join(ROOT, 'bench', 'RESULTS.md');
  const before = readFileSync(results, 'utf8');
  const scripts = readdirSync(join(ROOT, 'bench')).filter((f) => f.endsWith('.ts') && f !== 'common.ts' && f !== 'models.ts');
  t.ok(scripts.length >= 10, `${scripts.length} benchmark scripts`);
  for (const script of scripts) {
    // its flags read before tfjs, a model or the figure layer loads: it imports them (await import) after benchArgs
    t.same([...staticGraph(join(ROOT, 'bench', script)).packages], [], `${script}: no package imported before its flags are read`);
    const compiled = join(ROOT, 'dist', 'bench', script.replace(/\.ts$/, '.js'));
    const r = spawnSync(process.execPath, [compiled, '--help'], { encoding: 'utf8', timeout: 60_000 });
    t.equal(r.status, 0, `${script} --help: exit 0`);
    t.match(r.stdout, /--help {2,}this text/, `${script} --help prints its usage`);
    t.equal(r.stderr, '', `${script} --help: nothing on stderr`);
    const bad = spawnSync(process.execPath, [compiled, '--no-such-flag'], { encoding: 'utf8', timeout: 60_000 });
    const name = script.replace(/\.ts$/, '');
    t.equal(bad.status, 2, `${script} --no-such-flag: exit 2`);
    t.match(bad.stderr, new RegExp(`^bench ${name}: unknown flag --no-such-flag \\(flags: --[a-z][^\\n]*\\)\\n$`), `${script}: one line naming the flag`);
    t.equal(bad.stdout, '', `${script} --no-such-flag: nothing on stdout`);
  }
  t.equal(readFileSync(results, 'utf8'), before, 'bench/RESULTS.md untouched');
});

// Whether a process loaded tfjs: tfjs-core keeps its engine in a global (_tfengine) from the moment it is
// imported; preloaded with --import through NODE_OPTIONS (which `streamllm bench`'s child inherits), this says so
// on stderr as the process exits.
const tfjsProbe = join(tempDir('streamllm-tfjs-probe-'), 'probe.mjs');
writeFileSync(tfjsProbe, "process.on('exit', () => { if (globalThis._tfengine !== undefined) process.stderr.write('(tfjs loaded)\\n'); });\n");
const probed = { env: { ...process.env, NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --import=${pathToFileURL(tfjsProbe).href}` } };

t.test('a benchmark flag with a bad value: one line naming it, exit 2, before any work (tfjs not loaded), through streamllm bench too', async (t) => {
  const cases: [string, string[], string][] = [
    ['decode', ['--tokens', '0'], "--tokens: expected a whole number in 1..1000000, got '0'"],
    ['decode', ['--shapes', '15M,7M'], "--shapes: unknown shape '7M' (known: 260K, 15M, 42M, 110M)"],
    ['decode', ['--only', 'both', '--rounds'], '--rounds: expected a value after it'],
    [
      'decode',
      ['--engines', 'f32-2,f32-3', '--threads', '2', '--only', 'decode'],
      "--engines: no engine 'f32-3' with these flags (engines: runomp-1, runomp-2, f32-1, f32-2, q8-1, q8-2, tfjs)",
    ],
    ['decode', ['--engines', 'f32-1,tfjs,f32-1', '--threads', '2'], "--engines: 'f32-1' given twice"],
    ['decode', ['--only', 'eval', '--eval-tokens', '0'], '--only eval with --eval-tokens 0: no engine left to run'],
    // (the spin's A/B engine only with --spin-ab)
    [
      'decode',
      ['--engines', 'q8-2-nospin', '--threads', '2', '--eval-tokens', '0'],
      "--engines: no engine 'q8-2-nospin' with these flags (engines: runomp-1, runomp-2, f32-1, f32-2, q8-1, q8-2, tfjs)",
    ],
    ['builds_ab', ['--b', 'dist'], '--a: expected the dist/ folder of the build to compare with'],
    ['inproc_ab', ['--b', '/nonexistent'], "--b: /nonexistent is not a build's dist/ folder (no src/generate.js in it)"],
    [
      'inproc_ab',
      ['--a', 'tfjs'],
      `--a: ${join(process.cwd(), 'tfjs')} is not a build's dist/ folder (no src/generate.js in it); settings follow a colon: :tfjs`,
    ],
    ['inproc_ab', ['--b', ':gpu'], "--b: unknown setting 'gpu' in ':gpu' (expected tfjs, pool, pool-no-program, f32, q8 or threads=N)"],
    ['inproc_ab', ['--a', ':pool,tfjs'], "--a: two ways in ':pool,tfjs'"],
    ['inproc_ab', ['--a', ':tfjs,q8'], "--a: tfjs runs float32 on one thread (weights and threads=N are the pool's), got ':tfjs,q8'"],
    ['inproc_ab', ['--b', ':threads=0'], "--b: threads=N expects N in 1..256, got 'threads=0'"],
    ['inproc_ab', ['--weights', 'tfjs'], '--weights: tfjs is a way of running, not weights: --a :tfjs (or --b :tfjs)'],
    ['streaming', ['fig11'], "expected a benchmark among length, fig10, blocked, got 'fig11'"],
    ['profile_train', ['--shape', '10,2,3'], "--shape: expected DIM in 1..8192 divisible by HEADS and LAYERS in 1..256, got '10,2,3'"],
    ['endless', ['--backend', 'gpu'], "--backend: expected one of tensorflow, wasm, cpu, got 'gpu'"],
    ['decode', ['--record', '15M'], "unexpected argument '15M': every argument is a flag or a flag's value (see --help)"],
    ['big_q8', ['--tokens', '2', '--tokens', '0'], '--tokens given twice'],
    // (these read some flags only once tfjs had loaded: the same line came, after a third of a second)
    ['cold_start', ['--phases', '8,0'], "--phases: expected a comma-separated list of 1 to 64 token counts from 1 to 100000, got '8,0'"],
    ['cold_start', ['--rounds', '0'], "--rounds: expected a whole number in 1..100, got '0'"],
    ['hf_load', ['--shape', '9M'], "--shape: unknown shape '9M' (known: 260K, 15M, 42M, 110M)"],
    ['hf_load', ['--weights', 'q4'], "--weights: expected one of f32, q8, got 'q4'"],
    ['profile_decode', ['--tokens', '0'], "--tokens: expected a whole number in 1..100000, got '0'"],
    ['profile_decode', ['--shapes', '15M,9M'], "--shapes: unknown shape '9M' (known: 260K, 15M, 42M, 110M)"],
    ['big_q8', ['--threads', '0'], "--threads: expected a whole number in 1..256, got '0'"],
    ['f32_product', ['--shapes', '3x'], "--shapes: expected ROWSxCOLS (each 1..32000, at most 2^26 weights) or step, got '3x'"],
    ['builds_ab', ['--a', 'dist', '--shape', '9M'], "--shape: unknown shape '9M' (known: 260K, 15M, 42M, 110M)"],
    // (a flag a description names, of another program, is none: --dim was accepted, ignored, and a 2.7B model loaded)
    ['big_q8', ['--dim', '2560'], 'unknown flag --dim (flags: --model, --fast, --seed, --tokens, --threads, --record, --help)'],
  ];
  for (const [name, args, message] of cases) {
    const r = runCli(['bench', name, ...args], probed);
    t.equal(r.status, 2, `bench ${name} ${args.join(' ')}: exit 2`);
    t.equal(r.stderr, `bench ${name}: ${message}\n`, "the benchmark's line alone (streamllm adds none)");
    t.equal(r.stdout, '');
  }
  // the probe itself: it sees tfjs where a benchmark loads it (a missing model file is found once tfjs has loaded)
  const loaded = runCli(['bench', 'big_q8', '--model', join(tempDir(), 'missing.bin')], probed);
  t.equal(loaded.status, 2);
  t.match(loaded.stderr, /\(tfjs loaded\)\n$/, 'the probe reports tfjs loaded');
  const help = runCli(['bench', 'decode', '--help']);
  t.equal(help.status, 0);
  t.match(help.stdout, /^bench\/decode\.ts: greedy decode/, "bench NAME --help is the benchmark's help");
  // the one in-process A/B: an arm is a build and a way of running it
  const ab = runCli(['bench', 'inproc_ab', '--help'], probed);
  t.equal(ab.status, 0);
  t.match(ab.stdout, /^bench\/inproc_ab\.ts: two arms' greedy decode/);
  t.match(ab.stdout, /--a ARM {2,}arm A, the reference: \[DIST\]\[:SETTING,\.\.\.\]/, '--help shows what an arm is');
  for (const setting of ['pool-no-program', 'tfjs', 'threads=N'])
    t.match(ab.stdout, new RegExp(`\\n {19}${setting} {2,}`), `--help lists the setting ${setting}`);
  t.equal(ab.stderr, '', '--help: tfjs not loaded');
  const unknown = runCli(['bench', 'inproc_ab', '--arms', 'tfjs,pool']);
  t.equal(unknown.status, 2);
  t.match(unknown.stderr, /^bench inproc_ab: unknown flag --arms \(flags: --a, --b, --aa, /, "decode_ab's --arms is no flag here: one line");
});

t.test('bench decode --engines: those engines alone in that order, and each ratio also over the rounds, with its interval from 6 rounds', async (t) => {
  const results = join(ROOT, 'bench', 'RESULTS.md');
  const before = readFileSync(results, 'utf8');
  const rounds = 6;
  // (--threads 1: the all-threads ratios would name the one-thread engines again; each pair is given once)
  const args = [
    '--shapes',
    '260K',
    '--tokens',
    '4',
    '--warmup',
    '0',
    '--rounds',
    String(rounds),
    '--engines',
    'tfjs,f32-1',
    '--only',
    'decode',
    '--threads',
    '1',
  ];
  const r = runCli(['bench', 'decode', ...args]);
  t.equal(r.status, 0, r.stderr.slice(-300));
  const pool = 'this project, f32, 1 thread (pool)';
  const tfjs = 'this project, f32, 1 thread, tfjs path (--products tfjs)';
  const engineRows = r.stdout.split('\n').filter((line) => /^\| (this project|run\.c)/.test(line));
  t.same(
    engineRows.map((line) => line.split('|')[1]!.trim()),
    [tfjs, pool],
    'the two engines, no others, in the order given',
  );
  // each measurement's progress line: its rate (0.1 tok/s) and, where the probe gave them, the threads' round trips
  // before and after it (whole ns; none where the machine was too busy for the probe): the tables recomputed from them
  const progress = (name: string) =>
    [...r.stderr.matchAll(/^260K round (\d+)\/6: (.*?): ([\d.]+) tok\/s.*?(?:; threads' round trip (\d+) and (\d+) ns)?$/gm)].filter((m) => m[2] === name);
  const trips = (name: string) => progress(name).flatMap((m) => (m[4] === undefined ? [] : [Number(m[4]), Number(m[5])]));
  for (const [i, name] of [tfjs, pool].entries()) {
    // the row's last cell: median (range) of the round trips around its measurements
    const cell = (engineRows[i] ?? '').split('|').at(-2)!.trim();
    const ns = trips(name).sort((x, y) => x - y);
    if (ns.length === 0) t.equal(cell, '', `${name}: no round trip, none given`);
    else {
      const [, median, low, high] = /^(\d+) \((\d+)\.\.(\d+)\)$/.exec(cell) ?? [];
      const middle = ns.length % 2 ? ns[(ns.length - 1) / 2]! : (ns[ns.length / 2 - 1]! + ns[ns.length / 2]!) / 2;
      t.ok(Math.abs(Number(median) - middle) <= 1 && Number(low) === ns[0] && Number(high) === ns.at(-1), `${name}: round trips ${cell} of ${ns.join(' ')}`);
    }
  }
  const rates = (name: string) => progress(name).map((m) => Number(m[3]));
  const [a, b] = [rates(pool), rates(tfjs)];
  t.equal(a.length, rounds);
  t.equal(b.length, rounds);
  const lines = r.stdout.split('\n');
  const row = lines.find((line) => line.startsWith('| f32, 1 thread: pool / tfjs path '));
  t.same(
    lines.filter((line) => /^\| f32, 1 thread/.test(line) && / \/ /.test(line)).map((line) => line.split('|')[1]!.trim()),
    ['f32, 1 thread: pool / tfjs path'],
    'one ratio row for the pair (not again as "f32, 1 threads / f32, 1 thread, tfjs path")',
  );
  // (its first three cells; two more give the ratio by placement where the machine moved the threads' cores during the run)
  const cells = /^\| f32, 1 thread: pool \/ tfjs path +\| ([\d.]+) +\| ([\d.]+) \(([\d.]+)\.\.([\d.]+)\) +\|/.exec(row ?? '');
  t.ok(cells, `the ratio row: ${row}`);
  const sorted = (xs: number[]) => [...xs].sort((x, y) => x - y);
  const mid = (xs: number[]) => (sorted(xs)[2]! + sorted(xs)[3]!) / 2; // of 6
  const perRound = sorted(a.map((x, i) => x / b[i]!));
  // (the progress lines round each rate to 0.1 tok/s: a ratio x of the rates a and b off by up to x (0.05 / a + 0.05 / b); the
  // table rounds a ratio to 2 or 3 decimals)
  const slack = Math.max(...a.map((x, i) => 0.05 / x + 0.05 / b[i]!), 0.05 / mid(a) + 0.05 / mid(b));
  const close = (shown: string, x: number, decimals: number) => Math.abs(Number(shown) - x) <= slack * x + 0.5 * 10 ** -decimals + 1e-9;
  t.ok(close(cells![1]!, mid(a) / mid(b), 2), `the medians' ratio ${cells![1]}`);
  t.ok(close(cells![2]!, mid(perRound), 3), `the rounds' median ${cells![2]}`);
  // 6 rounds: the interval is the smallest and the largest (src/stats.ts: ranks 1 and 6)
  t.ok(close(cells![3]!, perRound[0]!, 3) && close(cells![4]!, perRound[5]!, 3), `the interval ${cells![3]}..${cells![4]}`);
  // by placement: a measurement is near (far) where both its round trips are below (above) the run's boundary, a round
  // where both its measurements are; the columns come where the run saw both
  const { placementBoundary } = await import('../bench/common.js');
  const nearBelow = placementBoundary([...trips(pool), ...trips(tfjs)]);
  const placed = (m: RegExpMatchArray, near: boolean) => m[4] !== undefined && [m[4], m[5]].every((ns) => Number(ns) < nearBelow === near);
  const measured = [...progress(pool), ...progress(tfjs)];
  const split = measured.some((m) => placed(m, true)) && measured.some((m) => placed(m, false));
  const header = lines.find((line) => line.startsWith('| same-run ratio')) ?? '';
  const byPlacement = row!.split('|').slice(4, -1);
  if (!split) t.same(byPlacement, [], 'one placement: no columns by placement');
  else {
    const shown = Number(/threads near \(round trip < (\d+) ns\)/.exec(header)?.[1]);
    t.ok(Math.abs(shown - nearBelow) <= 1, `the boundary ${shown} ns`);
    for (const [i, near] of [true, false].entries()) {
      const count = progress(pool).filter((m, k) => placed(m, near) && placed(progress(tfjs)[k]!, near)).length;
      t.match(byPlacement[i]!.trim(), count === 0 ? /^none$/ : new RegExp(`, ${count} rounds?$`), `${near ? 'near' : 'far'}: ${count} rounds`);
    }
  }
  t.equal(readFileSync(results, 'utf8'), before, 'bench/RESULTS.md untouched without --record');
});

t.test('bench decode --engines of run.c alone where run.c does not build: one line, exit 2, no empty tables', async (t) => {
  const r = runCli(['bench', 'decode', '--shapes', '260K', '--only', 'decode', '--engines', 'runomp-2,runomp-1', '--peer', join(tempDir(), 'missing.c')]);
  t.equal(r.status, 2);
  t.match(r.stderr, /^run\.c not built \(.*\n/, "the build's failure first");
  t.match(r.stderr, /\nbench decode: --engines: runomp-2,runomp-1 are run\.c's engines alone, and run\.c did not build\n$/);
  t.equal(r.stdout, '', 'no tables');
});

t.test('the A/Bs of two builds refuse one with its 2 MB-page addon against one without (page sizes, not code), before tfjs loads', async (t) => {
  // two builds as far as the check reads them: this build's kernels/huge_pages.js (which says where it looks for
  // the addon: build/Release beside its dist/), the files the A/Bs take for a dist/, and an addon in one of them
  // (a file is all the build checks for before loading it)
  const root = tempDir('streamllm-pages-ab-');
  const build = (name: string, addon: boolean, kernels = true) => {
    const dist = join(root, name, 'dist');
    mkdirSync(join(dist, 'src'), { recursive: true });
    for (const file of ['generate.js', 'backend.js']) writeFileSync(join(dist, 'src', file), '');
    if (kernels) {
      mkdirSync(join(dist, 'kernels'));
      copyFileSync(join(ROOT, 'dist', 'kernels', 'huge_pages.js'), join(dist, 'kernels', 'huge_pages.js')); // (the compiled one, from the source's test too)
    }
    if (addon) {
      mkdirSync(join(root, name, 'build', 'Release'), { recursive: true });
      writeFileSync(join(root, name, 'build', 'Release', 'huge_pages.node'), '');
    }
    return dist;
  };
  const withIt = build('with', true);
  const without = build('without', false);
  const older = build('older', false, false);
  const addon = join(root, 'with', 'build', 'Release', 'huge_pages.node');
  const env: NodeJS.ProcessEnv = { ...probed.env };
  delete env['STREAMLLM_HUGE_PAGES_ADDON'];
  const missing = `no ${join(root, 'without', 'build', 'Release', 'huge_pages.node')} (the 2 MB-page addon it loads: 4 KB pages)`;
  const refusals: [string, string[], string][] = [
    [
      'inproc_ab',
      ['--a', withIt, '--b', without],
      `--b ${without}: ${missing}, while --a has one (${addon}): build it (npm run install in ${join(root, 'without')}) or give --pages-mismatch-ok to compare page sizes too`,
    ],
    [
      'builds_ab',
      ['--a', without, '--b', withIt],
      `--a ${without}: ${missing}, while --b has one (${addon}): build it (npm run install in ${join(root, 'without')}) or give --pages-mismatch-ok to compare page sizes too`,
    ],
    [
      'builds_ab',
      ['--a', withIt, '--b', older],
      `--b ${older}: no kernels/huge_pages.js (a build from before 2 MB pages: 4 KB pages), while --a has one (${addon}): give --pages-mismatch-ok to compare page sizes too`,
    ],
  ];
  for (const [name, args, message] of refusals) {
    const r = runCli(['bench', name, ...args], { env });
    t.equal(r.status, 2, `bench ${name} ${args.join(' ')}: exit 2`);
    t.equal(r.stderr, `bench ${name}: ${message}\n`, 'one line naming the build without the addon, tfjs not loaded');
    t.equal(r.stdout, '');
  }
  // past the check, inproc_ab stops at its next one (these builds resolve no tfjs): so the pair was not refused
  const tfjsLine = new RegExp(`^bench inproc_ab: ${withIt}: resolves @tensorflow/tfjs to `);
  const passed: [string, string[], NodeJS.ProcessEnv][] = [
    ['--pages-mismatch-ok: page sizes compared on purpose', ['--a', withIt, '--b', without, '--pages-mismatch-ok'], env],
    // (the variable is where every build looks: both have the addon, or neither)
    ['STREAMLLM_HUGE_PAGES_ADDON: both builds load that file', ['--a', withIt, '--b', without], { ...env, STREAMLLM_HUGE_PAGES_ADDON: addon }],
    ["an arm on the tfjs path: one heap for both arms, the pool's pages not in it", ['--a', withIt, '--b', `${without}:tfjs`], env],
  ];
  for (const [what, args, childEnv] of passed) {
    const r = runCli(['bench', 'inproc_ab', ...args], { env: childEnv });
    t.equal(r.status, 2, what);
    t.match(r.stderr, tfjsLine, what);
  }
});

t.test(
  "a benchmark's user error from its run (bench/common's runBench): a StreamllmError or a WorkerPoolError is one line, exit 2; any other error is thrown",
  async (t) => {
    const { runBench } = await import('../bench/common.js');
    const { FileFormatError } = await import('../src/errors.js');
    const { WorkerPool } = await import('../kernels/pool.js');
    const pool = new WorkerPool(1);
    await pool.dispose();
    const name = basename(process.argv[1]!, '.js'); // runBench names the script it runs in: here, this file
    // each run: its process.exit and stderr captured (the exit does nothing here: runBench returns after it)
    const run = async (main: () => void) => {
      const exits = t.capture(process, 'exit', () => undefined);
      const lines = t.capture(process.stderr, 'write', () => true);
      try {
        await runBench(async () => main());
      } finally {
        exits.restore();
        lines.restore();
      }
      return { codes: exits.args().map((a) => a[0] as unknown), stderr: lines.args().map((a) => String(a[0])) };
    };
    const disposed = await run(() => pool.run(0, [], 4, 0));
    t.same(
      disposed,
      { codes: [2], stderr: [`bench ${name}: WorkerPool: used after dispose()\n`] },
      'a pool used after dispose (WorkerPoolError): its line, exit 2',
    );
    const file = await run(() => {
      throw new FileFormatError('m.bin', 'expected a llama2.c checkpoint');
    });
    t.same(file, { codes: [2], stderr: [`bench ${name}: m.bin: expected a llama2.c checkpoint\n`] }, 'a FileFormatError: its line, exit 2');
    await t.rejects(
      run(() => {
        throw new TypeError('a bug');
      }),
      new TypeError('a bug'),
      'anything else: thrown on, for its stack trace',
    );
  },
);

t.test("bench/common's placement of two threads: the round trip measured, and the boundary between near and far", async (t) => {
  const { coreRoundTripNs, placementBoundary } = await import('../bench/common.js');
  // (a machine of one core has no figure; the worker it starts is gone when it returns: this process exits on its own)
  if (availableParallelism() < 2) t.equal(await coreRoundTripNs(), undefined, 'one core: none');
  else {
    // a busy machine can keep the probe's two threads from running at once (it then gives none after a second): a figure within 20 s
    let ns: number | undefined;
    for (const started = performance.now(); ns === undefined && performance.now() - started < 20_000;) ns = await coreRoundTripNs();
    t.ok(ns !== undefined && ns > 0 && ns < 1e6, `a round trip of ${ns} ns`);
  }
  t.equal(placementBoundary([]), Infinity, 'none measured: all near');
  t.equal(placementBoundary([90, 52, 126, 84, 117]), Infinity, 'one placement (52 -> 84 is under a factor of 2)');
  t.equal(placementBoundary([90, 380, 126, 84, 406, 52]), Math.sqrt(126 * 380), 'the widest gap, 126 -> 380: its geometric middle');
  t.equal(placementBoundary([100, 210, 900]), Math.sqrt(210 * 900), 'of two gaps of 2 or more, the wider');
  t.equal(placementBoundary([200, 100]), Math.sqrt(200 * 100), 'a factor of 2 exactly parts them');
  t.equal(placementBoundary([199, 100]), Infinity, 'just under 2: one placement');
  t.equal(placementBoundary([380, 380, 90, 90]), Math.sqrt(90 * 380), 'repeated readings');
});
