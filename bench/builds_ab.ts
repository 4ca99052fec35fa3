// Two builds of streamllm, same run, alternating: decode speed (greedy,
// batch 1, streaming cache) and blocked-evaluation speed on a random
// llama2.c model (15M-shaped by default), for a before/after check of a
// change; --weights and --threads place the matrices in the worker pool
// (src/model/pooled.ts) as `eval --weights --threads` do.
// Each measurement runs in its own process, importing the build under test
// from its dist/ folder; rounds alternate A, B, A, B, ... so slow drift of
// the machine's load hits both builds alike.
//
//   node dist/bench/builds_ab.js --a /path/to/old/dist --b dist [--rounds 3] [--decode 128] [--warmup 0] [--score 2048]
//       [--shape 15M] [--weights f32|q8 --threads N] [--pages-mismatch-ok] [--record]
// Each build's 2 MB-page addon is named, and what each probe had in 2 MB
// pages; a build with the addon and one without are refused unless
// --pages-mismatch-ok (bench/common.ts pagesMismatch).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Probe {
  decodeTokensPerSecond: number;
  blockedTokensPerSecond: number;
  /** CPU ms (user + system) of this process per token: what the machine's load does not change. */
  decodeCpuMs: number;
  blockedCpuMs: number;
  /** MiB of the probe's anonymous memory in 2 MB pages at its end (bench/common.ts anonHugePagesMiB; undefined off Linux). */
  hugePagesMiB?: number;
}

/** CPU ms this process has used. */
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** In a child process: one build's decode and blocked-scoring speed. */
async function probe(
  dist: string,
  checkpoint: string,
  decodeTokens: number,
  scoreTokensCount: number,
  placement: string,
  warmup: number,
  greedy: boolean,
): Promise<Probe> {
  const load = async <T>(path: string) => (await import(resolve(dist, path))) as T;
  const { initBackend } = await load<typeof import('../src/backend.js')>('src/backend.js');
  const { loadModel } = await load<typeof import('../src/model/load.js')>('src/model/load.js');
  const { TokenStream } = await load<typeof import('../src/stream.js')>('src/stream.js');
  const { scoreTokens } = await load<typeof import('../src/eval/perplexity.js')>('src/eval/perplexity.js');
  await initBackend('wasm');
  const model = loadModel(checkpoint);
  if (placement !== '') {
    const [weights, threads] = placement.split(':');
    const { placeWeights } = await load<typeof import('../src/model/pooled.js')>('src/model/pooled.js');
    placeWeights(model, { weights: weights as 'f32' | 'q8', threads: Number(threads) });
    await model.pool?.ready();
  }
  const policy = { kind: 'streaming', sinkCount: 4, windowSize: 252 } as const;
  const vocab = model.config.vocabSize;
  const ids = Array.from({ length: scoreTokensCount }, (_, i) => 3 + ((i * 7919) % (vocab - 3)));
  let decoded: { seconds: number; cpuMs: number };
  if (greedy) {
    // as bench/decode.ts's child decodes: generate's greedy path, a dense cache from token 1, the untimed tokens a stream of their own
    const { generate } = await load<typeof import('../src/generate.js')>('src/generate.js');
    const { argmax } = await load<typeof import('../src/sample/sampler.js')>('src/sample/sampler.js');
    // (steps: 0 is generate's "until stopped": no untimed stream at all when --warmup is 0)
    if (warmup > 0) for await (const _ of generate(model, { kind: 'dense' }, [1], argmax, { steps: warmup }));
    decoded = await timed(decodeTokens, async () => {
      for await (const _ of generate(model, { kind: 'dense' }, [1], argmax, { steps: decodeTokens }));
    });
  } else {
    // a 16-token prompt, then one token per step, greedy
    const stream = new TokenStream(model, policy);
    let logits = stream.feed(ids.slice(0, 16), 'last');
    const step = () => {
      const row = logits.dataSync();
      logits.dispose();
      let best = 0;
      for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
      logits = stream.feed([best], 'last');
    };
    for (let i = 0; i < warmup; i++) step(); // untimed: a warm engine, a full window
    decoded = await timed(decodeTokens, () => {
      for (let i = 0; i < decodeTokens; i++) step();
      logits.dataSync();
      logits.dispose();
    });
    stream.dispose();
  }
  const scoringStarted = cpuMs();
  const scored = await scoreTokens(model, ids, policy);
  // (this build's helpers only now, the timing done: a probe loads nothing else before it)
  const { anonHugePagesMiB } = await import('./common.js');
  return {
    hugePagesMiB: anonHugePagesMiB(),
    decodeTokensPerSecond: decodeTokens / decoded.seconds,
    blockedTokensPerSecond: (ids.length - 1) / scored.seconds,
    decodeCpuMs: decoded.cpuMs,
    blockedCpuMs: (cpuMs() - scoringStarted) / (ids.length - 1),
  };
}

/** Wall seconds, and CPU ms a token, of `decode` decoding `tokens` tokens. */
async function timed(tokens: number, decode: () => void | Promise<void>): Promise<{ seconds: number; cpuMs: number }> {
  const started = performance.now();
  const cpuStarted = cpuMs();
  await decode();
  return { seconds: (performance.now() - started) / 1000, cpuMs: (cpuMs() - cpuStarted) / tokens };
}

const HELP = `Two builds of streamllm, same run, alternating: greedy decode and blocked-evaluation speed on a random llama2.c model.

  node dist/bench/builds_ab.js --a OLD/dist --b dist [--rounds 3] [--decode 128] [--warmup 0] [--greedy] [--score 2048] [--shape 15M] [--weights f32|q8] [--threads N] [--pages-mismatch-ok] [--record]

  --a, --b       the two builds' dist/ folders (b defaults to this one)
  --rounds N     alternating rounds (default 3)
  --decode N     greedy steps per decode measurement (default 128)
  --warmup N     untimed greedy steps before them (default 0): a warm engine, and past 252 a full window
  --greedy       decode as bench/decode.ts does (generate's greedy path, a dense cache, the untimed steps a
                 stream of their own) instead of a streaming stream's logits and a JavaScript argmax
  --score N      tokens per blocked-evaluation measurement (default 2048)
  --shape S      the random model's llama2.c shape (default 15M)
  --weights F    f32 or q8: matrices in the worker pool, as eval --weights (default: the tfjs path)
  --threads N    the pool's threads (default 1 when --weights is given)
  --pages-mismatch-ok  compare the builds although one has its 2 MB-page addon (build/Release/huge_pages.node beside
                 its dist/, or STREAMLLM_HUGE_PAGES_ADDON: kernels/huge_pages.ts) and the other not: without it such a
                 pair is refused (it would compare page sizes, ~1.16x on two threads, not code)
  --record       append the table to bench/RESULTS.md
  --help         this text`;

async function main(): Promise<void> {
  if (process.argv[2] === '--probe') {
    const [, , , dist, checkpoint, decode, score, placement, warmup, greedy] = process.argv;
    process.stdout.write(
      JSON.stringify(await probe(dist!, checkpoint!, Number(decode), Number(score), placement ?? '', Number(warmup ?? 0), greedy === 'greedy')),
    );
    return;
  }
  // Only the parent loads this build's helpers: a probe loads nothing but the build under test.
  const { benchArgs, markdownTable, median, pagesAddonLine, pagesAddonOf, pagesMismatch, recordResult, shapeFlag } = await import('./common.js');
  const cli = benchArgs(HELP);
  if (!cli.has('a')) cli.fail('--a: expected the dist/ folder of the build to compare with');
  const builds = { A: resolve(cli.value('a', '')), B: resolve(cli.value('b', 'dist')) };
  for (const [key, dir] of Object.entries(builds)) {
    if (!existsSync(join(dir, 'src', 'backend.js'))) cli.fail(`--${key.toLowerCase()}: ${dir} is not a build's dist/ folder (no src/backend.js in it)`);
  }
  // (a dist/ copy or a tsc-only build has no addon: 4 KB pages, the tfjs path's heap and the pool's alike)
  if (!cli.has('pages-mismatch-ok')) {
    const mismatch = await pagesMismatch(
      [
        ['a', builds.A],
        ['b', builds.B],
      ],
      'pages-mismatch-ok',
    );
    if (mismatch !== undefined) cli.fail(mismatch);
  }
  const addons = { A: pagesAddonLine(await pagesAddonOf(builds.A)), B: pagesAddonLine(await pagesAddonOf(builds.B)) };
  const rounds = cli.count('rounds', 3, 1, 100);
  const decode = cli.count('decode', 128, 1, 100_000);
  const warmup = cli.count('warmup', 0, 0, 100_000);
  const greedy = cli.has('greedy');
  const score = cli.count('score', 2048, 17, 1_000_000); // more than the 16-token prompt
  const shape = shapeFlag(cli, 'shape', '15M');
  const weights = cli.has('weights') ? cli.choice('weights', 'f32', ['f32', 'q8']) : undefined;
  const threads = cli.has('threads') ? String(cli.count('threads', 1, 1, 256)) : undefined;
  // (every flag checked first: models.js loads tfjs)
  const { randomCheckpoint } = await import('./models.js');
  const checkpoint = randomCheckpoint(shape);
  const placement = weights !== undefined || threads !== undefined ? `${weights ?? 'f32'}:${threads ?? '1'}` : '';
  const placed = placement === '' ? 'the tfjs path' : `--weights ${weights ?? 'f32'} --threads ${threads ?? '1'}`;
  const self = fileURLToPath(import.meta.url);
  const results: Record<'A' | 'B', Probe[]> = { A: [], B: [] };
  for (let r = 0; r < rounds; r++) {
    for (const key of ['A', 'B'] as const) {
      const out = execFileSync(
        process.execPath,
        [self, '--probe', builds[key], checkpoint, String(decode), String(score), placement, String(warmup), greedy ? 'greedy' : ''],
        {
          encoding: 'utf8',
        },
      );
      results[key].push(JSON.parse(out) as Probe);
      process.stderr.write(`round ${r + 1} ${key}: ${out}\n`);
    }
  }
  const med = (key: 'A' | 'B', f: (p: Probe) => number) => median(results[key].map(f));
  const cell = (key: 'A' | 'B', f: (p: Probe) => number) => `${med(key, f).toFixed(1)} (${results[key].map((p) => f(p).toFixed(0)).join(', ')})`;
  const decodeOf = (p: Probe) => p.decodeTokensPerSecond;
  const blockedOf = (p: Probe) => p.blockedTokensPerSecond;
  const decodeCpu = (p: Probe) => p.decodeCpuMs;
  const blockedCpu = (p: Probe) => p.blockedCpuMs;
  const cpuCell = (key: 'A' | 'B', f: (p: Probe) => number) => `${med(key, f).toFixed(2)} (${results[key].map((p) => f(p).toFixed(2)).join(', ')})`;
  const body =
    `Random llama2.c ${shape}-shaped model, wasm, ${placed}, ${greedy ? "decode: generate's greedy path, dense; blocked eval: " : ''}streaming(4+252). ${rounds} rounds, builds alternating A, B; median (each round).\n` +
    `A: ${builds.A} (${addons.A})\nB: ${builds.B} (${addons.B})\n\n` +
    markdownTable(
      [
        'build',
        `decode tok/s (${decode} greedy steps after ${warmup})`,
        'decode CPU ms/token',
        `blocked eval tok/s (${score} tokens)`,
        'blocked CPU ms/token',
        'in 2 MB pages at the end, MiB',
      ],
      (['A', 'B'] as const).map((key) => [
        key,
        cell(key, decodeOf),
        cpuCell(key, decodeCpu),
        cell(key, blockedOf),
        cpuCell(key, blockedCpu),
        results[key].map((p) => (p.hugePagesMiB === undefined ? '?' : p.hugePagesMiB.toFixed(0))).join(', '),
      ]),
    ) +
    `\n\nB/A wall speed: decode ${(med('B', decodeOf) / med('A', decodeOf)).toFixed(3)}, blocked ${(med('B', blockedOf) / med('A', blockedOf)).toFixed(3)}; ` +
    `B/A CPU time per token (lower is faster): decode ${(med('B', decodeCpu) / med('A', decodeCpu)).toFixed(3)}, blocked ${(med('B', blockedCpu) / med('A', blockedCpu)).toFixed(3)}. ` +
    'On a shared machine the CPU time is the comparison that counts: wall time includes waiting for a core.';
  process.stdout.write(body + '\n');
  if (!process.argv.includes('--record')) return;
  const flags = [
    `--shape ${shape}`,
    ...(cli.has('pages-mismatch-ok') ? ['--pages-mismatch-ok'] : []),
    ...(weights !== undefined ? [`--weights ${weights}`] : []),
    ...(threads !== undefined ? [`--threads ${threads}`] : []),
  ].join(' ');
  recordResult(
    'Builds A/B: decode and blocked eval (bench/builds_ab.ts)',
    `node dist/bench/builds_ab.js --a ${cli.value('a', '')} --b ${cli.value('b', 'dist')} --rounds ${rounds} --decode ${decode} --warmup ${warmup}${greedy ? ' --greedy' : ''} --score ${score} ${flags} --record`,
    body,
  );
}

await main();
