// The worker pool's memory (kernels/pool.ts, pool_regions.ts,
// huge_pages.ts): allocation's sizes, alignment and limit, the regions that
// are reused, split, merged and zeroed, and the 2 MB pages the memory asks
// for (and what is said where the addon that asks did not build).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import {
  adviseHugePages,
  HUGE_PAGE_BYTES,
  hugePageEnd,
  hugePagesUnavailable,
  type PageAdvice,
  reservedFrom,
  transparentHugePageMode,
} from '../kernels/huge_pages.js';
import { POOL_MAX_BYTES, WorkerPool } from '../kernels/pool.js';
import { PoolRegions } from '../kernels/pool_regions.js';
import { allocMatrix, matrixBytes, pooledProduct } from '../kernels/split_products.js';
import { anonHugePagesKbAt, vmFlagsAt } from './helpers.js';

t.test('allocation: sizes, alignment, and the 4 GiB limit', async (t) => {
  // rows padded to whole groups: q8 of four (10 -> 12), f32 of sixteen (10 -> 16)
  t.equal(matrixBytes('q8', 10, 64), 12 * 64 + 4 * 24);
  t.equal(matrixBytes('f32', 10, 64), 4 * 16 * 64);
  const pool = new WorkerPool(1);
  t.equal(pool.alloc(3) % 16, 0);
  t.equal(pool.alloc(5) % 16, 0);
  t.throws(() => pool.alloc(5 * 2 ** 30), /4 GiB/);
  t.throws(() => allocMatrix(pool, 'q8', 4, 0), /bad shape/);
  t.equal(matrixBytes('f32', 2, 40), 4 * 16 * 64, 'columns padded to whole blocks, rows to a group');
  t.throws(() => new WorkerPool(0), /positive integer/);
  t.throws(() => pooledProduct(allocMatrix(pool, 'f32', 4, 32), new Float32Array(16), 1), /16 values/);
  await pool.dispose();
});

t.test(
  "2 MB pages: the pool's memory asks for them (VmFlags hg) and grows in whole 2 MB blocks; unasked, in 64 KB wasm pages",
  // (npm install builds the addon, native/huge_pages.c, where it can: CI fails where it did not, .ci/run)
  { skip: hugePagesUnavailable() ?? false },
  async (t) => {
    const pool = new WorkerPool(1);
    const advice = pool.pageAdvice;
    t.ok(advice.hugePages, advice.hugePages ? 'advised' : `not advised: ${advice.why}`);
    if (advice.hugePages) {
      t.match(vmFlagsAt(advice.address), /\bhg\b/, 'the mapping under the memory carries MADV_HUGEPAGE');
      t.equal(advice.address % 65536, 0, 'the memory starts on a wasm page');
      // the constructor writes the canary and the control words into the first 2 MB block: mapped whole first, it takes a
      // 2 MB page, as the blocks alloc grows into do (with only the first 64 KB wasm page mapped, it kept 4 KB pages)
      // (where the memory starts inside a 2 MB block, as on kernels that do not align large mappings to one, its first block
      // is that block's tail: no 2 MB page can back it, mapped whole or not)
      if (advice.address % HUGE_PAGE_BYTES === 0)
        t.equal(anonHugePagesKbAt(advice.address), HUGE_PAGE_BYTES / 1024, 'the first block, written by the constructor, is one 2 MB page');
      else t.comment(`the memory starts ${advice.address % HUGE_PAGE_BYTES} bytes into a 2 MB block: its first block cannot be a 2 MB page`);
      for (const bytes of [3, 3 * 2 ** 20, 5 * 2 ** 20 + 7]) {
        pool.alloc(bytes);
        const end = advice.address + pool.bytes().length;
        t.equal(end % HUGE_PAGE_BYTES, 0, `after alloc(${bytes}): mapped to the end of a 2 MB block`);
        t.ok(end - HUGE_PAGE_BYTES < advice.address + pool.allocatedBytes, 'and no further than the block that holds the last byte');
      }
    }
    await pool.dispose();

    const unasked = new WorkerPool(1, { hugePages: false });
    t.same(unasked.pageAdvice, { hugePages: false, why: 'not asked (hugePages: false)' });
    unasked.alloc(3 * 2 ** 20);
    t.equal(unasked.bytes().length, Math.ceil(unasked.allocatedBytes / 65536) * 65536, 'grown in 64 KB wasm pages, no further');
    await unasked.dispose();
  },
);

t.test('2 MB pages: an addon not built or not loadable says why, and nothing is advised', async (t) => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 4, shared: true });
  const dir = mkdtempSync(join(tmpdir(), 'streamllm-pages-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const missing = join(dir, 'huge_pages.node');
  const garbled = join(dir, 'garbled.node');
  writeFileSync(garbled, 'not a shared object');
  const mode = transparentHugePageMode();
  if (mode === undefined || mode === 'never') {
    t.match(adviseHugePages(memory.buffer, 4 * 65536, missing), { hugePages: false, why: /transparent huge pages/ });
    return;
  }
  t.same(adviseHugePages(memory.buffer, 4 * 65536, missing), {
    hugePages: false,
    why: `${missing} was not built (npm install builds native/huge_pages.c with node-gyp)`,
  });
  t.match(adviseHugePages(memory.buffer, 4 * 65536, garbled), { hugePages: false, why: new RegExp(`^${garbled} did not load: `) });
  const stale = join(dir, 'stale.cjs'); // loads, but is not this version's addon
  writeFileSync(stale, 'module.exports = { advise: () => 0 };');
  t.same(adviseHugePages(memory.buffer, 4 * 65536, stale), { hugePages: false, why: `${stale} has no advise and address functions` });
  // (an empty buffer has no first byte to advise from: said, not thrown)
  t.same(adviseHugePages(new ArrayBuffer(0), 65536), { hugePages: false, why: 'the memory is empty: no first byte to advise from' });
  // growth rounds to absolute 2 MB blocks, at most the maximum; unadvised, exactly the bytes asked
  const at = { hugePages: true as const, address: 5 * HUGE_PAGE_BYTES + 65536, bytes: 2 ** 32 };
  t.equal(hugePageEnd(at, 1, 2 ** 32), HUGE_PAGE_BYTES - 65536);
  t.equal(hugePageEnd(at, HUGE_PAGE_BYTES - 65536, 2 ** 32), HUGE_PAGE_BYTES - 65536);
  t.equal(hugePageEnd(at, HUGE_PAGE_BYTES - 65535, 2 ** 32), 2 * HUGE_PAGE_BYTES - 65536);
  t.equal(hugePageEnd(at, 3 * 65536, 2 * 65536), 2 * 65536, 'never past the maximum');
  t.equal(hugePageEnd({ hugePages: false, why: '' }, 12345, 2 ** 32), 12345);
});

/** What a child node process needs to run this file's siblings: tap's loader where this runs from TypeScript source (test/), nothing from dist/test/. */
const loaderArgs = () => (extname(process.argv[1]!) === '.ts' ? process.execArgv : []);

t.test('2 MB pages: what is advised is the memory reservation as /proc/self/maps shows it, never past it', async (t) => {
  const maps = (lines: [number, number, string, string?][]) =>
    lines
      .map(([from, to, perms, path]) => `${from.toString(16)}-${to.toString(16)} ${perms} 00000000 00:00 ${path === undefined ? '0 ' : `0 ${path}`}`)
      .join('\n');
  const M = 2 ** 20;
  const at = 0x7f0000000000;
  // V8 with guard regions: the accessible part, then no-access pages well past 4 GiB
  const guarded = maps([
    [at - 2048 * M, at, '---p'],
    [at, at + 16 * M, 'rw-p'],
    [at + 16 * M, at + 8192 * M, '---p'],
    [at + 8192 * M, at + 8194 * M, 'rw-p'],
  ]);
  t.equal(reservedFrom(guarded, at, 4096 * M), 4096 * M, 'guard regions: the most asked for');
  // bounds checks instead: exactly the maximum, then a gap or another mapping
  const exact = maps([
    [at, at + M / 16, 'rw-p'],
    [at + M / 16, at + 100 * (M / 16), '---p'],
    [at + 100 * (M / 16) + 4096, at + 101 * (M / 16), '---p', ''],
    [at + 101 * (M / 16), at + 200 * (M / 16), 'rw-p'],
  ]);
  t.equal(reservedFrom(exact, at, 4096 * M), 100 * (M / 16), 'the maximum of 100 wasm pages: to the gap, not across it');
  const stack = maps([
    [at, at + M, 'rw-p'],
    [at + M, at + 2 * M, '---p'],
    [at + 2 * M, at + 3 * M, 'rw-p', '[stack:1]'],
  ]);
  t.equal(reservedFrom(stack, at, 4096 * M), 2 * M, 'an accessible neighbour directly after: not taken');
  const file = maps([
    [at, at + M, 'rw-p'],
    [at + M, at + 2 * M, '---p', '/lib/x.so'],
  ]);
  t.equal(reservedFrom(file, at + 4096, 4096 * M), M - 4096, "a file's mapping directly after: not taken; from an address inside the first mapping");
  t.equal(reservedFrom(guarded, at - 2048 * M - 1, 4096 * M), undefined, 'an address no mapping holds');
  if (hugePagesUnavailable() !== undefined) return;
  // for real: with bounds checks instead of the trap handler's guard regions, V8 reserves a memory's maximum alone;
  // a madvise over 4 GiB from its first byte failed (ENOMEM) after advising the mappings beyond (a thread's stack)
  const module = pathToFileURL(join(dirname(process.argv[1]!), '..', 'kernels', `huge_pages${extname(process.argv[1]!)}`)).href;
  const script = `
    import { readFileSync } from 'node:fs';
    import { adviseHugePages } from ${JSON.stringify(module)};
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 100 });
    const advice = adviseHugePages(memory.buffer, 2 ** 32);
    // the VmFlags of each mapping from the memory's start to 4 GiB past it
    const flags = readFileSync('/proc/self/smaps', 'utf8').split(/\\n(?=[0-9a-f]+-[0-9a-f]+ )/).map((block) => {
      const [from, to] = block.split(' ')[0].split('-').map((hex) => parseInt(hex, 16));
      return { from, to, hg: /^VmFlags:.*\\bhg\\b/m.test(block) };
    }).filter((m) => advice.hugePages && m.to > advice.address && m.from < advice.address + 2 ** 32);
    process.stdout.write(JSON.stringify({ advice, flags }));`;
  const r = spawnSync(process.execPath, [...loaderArgs(), '--disable-wasm-trap-handler', '--input-type=module', '-e', script], { encoding: 'utf8' });
  t.equal(r.status, 0, `the child ran (${r.stderr.trim().split('\n')[0] ?? ''})`);
  const { advice, flags } = JSON.parse(r.stdout || '{}') as { advice?: PageAdvice; flags?: { from: number; to: number; hg: boolean }[] };
  t.match(advice, { hugePages: true }, 'advised');
  if (advice?.hugePages !== true || flags === undefined) return;
  // the memory's 100 wasm pages, all it reserved; unless a neighbour's untouched reservation (---p) lies directly
  // after, which the kernel merges into the reservation's mapping (reservedFrom cannot tell them apart): then to that
  // mapping's end, as /proc/self/maps shows it (Node 24 placed one there in 9 runs of 20, Node 22 in 1, Node 20 in 0)
  const reserved = advice.address + 100 * 65536;
  const merged = flags.find((m) => m.from < reserved && reserved < m.to);
  t.equal(
    advice.bytes,
    (merged?.to ?? reserved) - advice.address,
    merged === undefined
      ? "advised: the memory's 100 wasm pages, all it reserved"
      : `advised: the memory's 100 wasm pages and the ${merged.to - reserved} bytes merged into their mapping`,
  );
  const end = advice.address + advice.bytes;
  t.ok(
    flags.filter((m) => m.to <= end).every((m) => m.hg),
    'every mapping of the reservation carries MADV_HUGEPAGE',
  );
  t.same(
    flags.filter((m) => m.from >= end && m.hg),
    [],
    'no mapping past it does',
  );
});

t.test('STREAMLLM_HUGE_PAGES_ADDON set to nothing is unset: the built addon, not an empty path', async (t) => {
  const module = pathToFileURL(join(dirname(process.argv[1]!), '..', 'kernels', `huge_pages${extname(process.argv[1]!)}`)).href;
  const script = `import { HUGE_PAGES_ADDON } from ${JSON.stringify(module)}; process.stdout.write(HUGE_PAGES_ADDON);`;
  const addonWith = (value: string | undefined) => {
    const env = { ...process.env, STREAMLLM_HUGE_PAGES_ADDON: value };
    if (value === undefined) delete env.STREAMLLM_HUGE_PAGES_ADDON;
    return spawnSync(process.execPath, [...loaderArgs(), '--input-type=module', '-e', script], { env, encoding: 'utf8' }).stdout;
  };
  const built = addonWith(undefined);
  t.match(built, /\/build\/Release\/huge_pages\.node$/, 'unset: the built addon');
  t.equal(addonWith(''), built, 'empty: the same (a path: the next test)');
});

t.test('without the addon (a machine without a C compiler): the 2 MB-page tests skip, naming it, and the fallback says why', async (t) => {
  // this file's and simd.test's "2 MB pages: " tests, each file in a process whose addon path is a missing file
  const missing = join(tmpdir(), 'streamllm-no-addon', 'huge_pages.node');
  const why = hugePagesUnavailable(missing)!;
  const mode = transparentHugePageMode();
  if (mode === 'madvise' || mode === 'always')
    t.equal(why, `${missing} was not built (npm install builds native/huge_pages.c with node-gyp)`, 'the reason names the addon');
  const [self, dir] = [process.argv[1]!, dirname(process.argv[1]!)];
  for (const file of [self, join(dir, `simd.test${extname(self)}`)]) {
    const env = { ...process.env, STREAMLLM_HUGE_PAGES_ADDON: missing, TAP_GREP: '^2 MB pages: ' };
    const r = spawnSync(process.execPath, [...loaderArgs(), file], { env, encoding: 'utf8' });
    const name = basename(file);
    t.equal(r.status, 0, `${name}: passes (${r.stderr.trim().split('\n')[0] ?? ''})`);
    t.notMatch(r.stdout, /^\s*not ok/m, `${name}: no failure`);
    const skipped = r.stdout.split('\n').filter((line) => /^ok \d+ - 2 MB pages: .* # SKIP /.test(line));
    t.same(
      skipped.map((line) => line.slice(line.indexOf(' # SKIP ') + 8)),
      [why],
      `${name}: its 2 MB-page test skips, saying why`,
    );
    if (file === self) t.match(r.stdout, /^ok \d+ - 2 MB pages: an addon not built or not loadable says why/m, `${name}: the fallback's own test runs`);
  }
});

t.test('pool regions: reused smallest-first, split, merged with free neighbours, zeroed; growing and freeing does not grow the memory', async (t) => {
  const pool = new WorkerPool(1);
  const regions = new PoolRegions(pool);
  const a = regions.alloc(100); // 112 bytes
  const b = regions.alloc(64);
  const c = regions.alloc(32);
  t.equal(a % 16, 0);
  t.equal(b, a + 112, 'fresh regions one after another, 16-byte aligned');
  t.equal(regions.heldBytes, 112 + 64 + 32);
  new Uint8Array(pool.memory.buffer).fill(7, b, b + 64);
  regions.release(b);
  t.equal(regions.alloc(48), b, 'a freed region is reused');
  t.equal(regions.freeBytes, 16, 'its tail stays free');
  t.same(Array.from(new Uint8Array(pool.memory.buffer, b, 48)), new Array(48).fill(0), 'and zeroed');
  regions.release(b);
  regions.release(a);
  t.equal(regions.freeBytes, 112 + 64, 'neighbours merged');
  regions.release(c);
  t.equal(regions.freeBytes, 112 + 64 + 32, 'and merged again');
  t.equal(regions.alloc(200), a, 'one region from the three');
  t.throws(() => regions.release(a + 16), /no region/, 'only what alloc returned');
  // a cache that doubles, then is disposed, many times over: the memory stops growing
  const top = () => pool.allocatedBytes;
  const cycle = () => {
    let held = regions.alloc(1024);
    for (let size = 2048; size <= 64 * 1024; size *= 2) {
      const grown = regions.alloc(size);
      regions.release(held);
      held = grown;
    }
    regions.release(held);
  };
  cycle();
  const after = top();
  for (let i = 0; i < 20; i++) cycle();
  t.equal(top(), after, 'twenty more caches grew and went in the same memory');
  const floats = regions.allocFloats(10);
  t.equal(floats.length, 10);
  t.equal(floats.buffer.byteLength >= floats.byteOffset + 40, true, 'an array over the memory, after it grew');
  regions.releaseFloats(floats);
  t.ok(regions.room >= 2 ** 31, 'room: what the 4 GiB still hold');
  t.equal(regions.roomLeaving(2 ** 20), regions.room - 2 ** 20, 'room leaving a spare: less of the fresh memory');
  await pool.dispose();
  const other = new WorkerPool(1);
  const few = new PoolRegions(other);
  const freed = few.alloc(96);
  few.alloc(16);
  few.release(freed);
  t.equal(few.roomLeaving(POOL_MAX_BYTES), 96, 'no fresh memory to give: the largest free region');
  await other.dispose();
});
