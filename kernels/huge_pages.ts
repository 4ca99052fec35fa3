// 2 MB pages under the worker pool's memory (Linux transparent huge pages).
//
// Why: a decode step reads every weight once, 61 MB for the 15M shape. On
// 4 KB pages that is some 15,000 pages a step, far more than the TLB holds,
// so nearly every page costs a page walk (a nested one in a VM). On 2 MB
// pages it is 30. Where transparent huge pages are in "madvise" mode (the
// default of many distributions, and this project's machines), the kernel
// gives 2 MB pages only to ranges that ask with madvise(MADV_HUGEPAGE). V8
// never asks for WebAssembly memory and JavaScript cannot, so the weights
// lie in 4 KB pages; run.c, reading its checkpoint through mmap, gets 2 MB
// page-cache folios for most of it. Measured here: a 15M float32 step's
// products on one thread took about 1.4x as long on 4 KB pages
// (products.wat's comment); whole decode steps, float32 on two threads,
// 1.05-1.20x (bench/decode.ts --pages-ab, README).
//
// How: native/huge_pages.c, an optional addon (`npm install` builds it with
// node-gyp; without a compiler it is skipped), makes the one madvise call
// over the memory's whole reservation, right after the memory is made. The
// pool then grows its memory in whole 2 MB blocks (hugePageEnd): a block
// first written while only partly mapped gets 4 KB pages and keeps them.
// Without the addon everything runs the same on 4 KB pages, bit for bit:
// page size changes how fast memory is reached, never what is in it.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** A huge page on x86-64 and arm64 (with 4 KB base pages): what the growth rounds to. */
export const HUGE_PAGE_BYTES = 2 * 1024 * 1024;

/** What the kernel was asked for a memory, and where the memory starts. */
export type PageAdvice =
  | { hugePages: true; /** The memory's first byte, as an address (for /proc/self/smaps). */ address: number }
  | { hugePages: false; /** One line: why the memory stays on 4 KB pages. */ why: string };

interface HugePagesAddon {
  /** madvise(view's first byte, bytes, MADV_HUGEPAGE): 0, or the errno (ENOSYS off Linux). */
  advise(view: Uint8Array, bytes: number): number;
  /** The view's first byte, as an address. */
  address(view: Uint8Array): number;
}

/** What a memory that was told not to ask (hugePages: false, for A/B runs) reports. */
export const NOT_ASKED: PageAdvice = { hugePages: false, why: 'not asked (hugePages: false)' };

/**
 * Where node-gyp puts the addon: build/Release beside package.json (this
 * file is dist/kernels/huge_pages.js); or STREAMLLM_HUGE_PAGES_ADDON, which
 * the tests point at a missing file to run as on a machine where the addon
 * did not build.
 */
export const HUGE_PAGES_ADDON = process.env.STREAMLLM_HUGE_PAGES_ADDON ?? fileURLToPath(new URL('../../build/Release/huge_pages.node', import.meta.url));

/** The system's transparent-huge-page mode: 'always', 'madvise', 'never', or undefined where there is no such file (not Linux). */
export function transparentHugePageMode(): string | undefined {
  const file = '/sys/kernel/mm/transparent_hugepage/enabled';
  if (!existsSync(file)) return undefined;
  return /\[(\w+)\]/.exec(readFileSync(file, 'utf8'))?.[1];
}

/** Why this system gives no process 2 MB pages on request, or undefined where it does (madvise or always). */
function systemWithout(): string | undefined {
  const mode = transparentHugePageMode();
  if (mode === undefined) return 'transparent huge pages are a Linux feature';
  if (mode === 'never') return 'transparent huge pages are off on this system (never)';
  return undefined;
}

/** Why no memory can be advised here (the system; the addon not built), or undefined where one can: what the 2 MB-page tests skip on. */
export function hugePagesUnavailable(addonPath = HUGE_PAGES_ADDON): string | undefined {
  return systemWithout() ?? (existsSync(addonPath) ? undefined : `${addonPath} was not built (npm install builds native/huge_pages.c with node-gyp)`);
}

/**
 * Ask for 2 MB pages over `reservedBytes` from the start of a WebAssembly
 * memory's buffer (its maximum: later growth in place is covered too). Never throws: what comes back says
 * whether the memory is advised, or why not. `addonPath` is for tests.
 */
export function adviseHugePages(buffer: ArrayBufferLike, reservedBytes: number, addonPath = HUGE_PAGES_ADDON): PageAdvice {
  const system = systemWithout();
  if (system !== undefined) return { hugePages: false, why: system };
  if (buffer.byteLength === 0) return { hugePages: false, why: 'the memory is empty: no first byte to advise from' };
  const unavailable = hugePagesUnavailable(addonPath);
  if (unavailable !== undefined) return { hugePages: false, why: unavailable };
  let addon: Partial<HugePagesAddon>;
  try {
    addon = createRequire(import.meta.url)(addonPath) as Partial<HugePagesAddon>;
  } catch (e) {
    return { hugePages: false, why: `${addonPath} did not load: ${(e as Error).message.split('\n')[0]}` };
  }
  // (a build of another version of native/huge_pages.c)
  if (typeof addon.advise !== 'function' || typeof addon.address !== 'function')
    return { hugePages: false, why: `${addonPath} has no advise and address functions` };
  const view = new Uint8Array(buffer, 0, 1);
  const errno = addon.advise(view, reservedBytes);
  if (errno !== 0) return { hugePages: false, why: `madvise(MADV_HUGEPAGE) failed with errno ${errno}` };
  const address = addon.address(view);
  if (!Number.isSafeInteger(address) || address < 0) return { hugePages: false, why: `${addonPath} gave no address for the memory` };
  return { hugePages: true, address };
}

/**
 * How far to grow a memory that must hold `end` bytes: to the end of the 2 MB
 * block that holds byte end - 1 (blocks counted from address 0, where the
 * kernel places huge pages), at most `maxBytes`; just `end` when not advised.
 */
export function hugePageEnd(advice: PageAdvice, end: number, maxBytes: number): number {
  if (!advice.hugePages) return end;
  const blockEnd = Math.ceil((advice.address + end) / HUGE_PAGE_BYTES) * HUGE_PAGE_BYTES - advice.address;
  return Math.min(blockEnd, maxBytes);
}
