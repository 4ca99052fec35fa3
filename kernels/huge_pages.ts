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
// over the memory's whole reservation (as /proc/self/maps shows it: V8's
// differs between engines and settings), right after the memory is made. The
// pool then maps its first 2 MB block whole before writing to it, and grows
// in whole 2 MB blocks after (hugePageEnd): a block first written while only
// partly mapped gets 4 KB pages and keeps them.
// Without the addon everything runs the same on 4 KB pages, bit for bit:
// page size changes how fast memory is reached, never what is in it.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** A huge page on x86-64 and arm64 (with 4 KB base pages): what the growth rounds to. */
export const HUGE_PAGE_BYTES = 2 * 1024 * 1024;

/** What the kernel was asked for a memory, and where the memory starts. */
export type PageAdvice =
  | {
      hugePages: true;
      /** The memory's first byte, as an address (for /proc/self/smaps). */
      address: number;
      /** Bytes advised from there: the memory's reservation as /proc/self/maps shows it (reservedFrom), at most what the caller asked for. */
      bytes: number;
    }
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
 * did not build. Set to nothing (`STREAMLLM_HUGE_PAGES_ADDON= node ...`), it
 * is unset, as a shell's empty variable usually means, not an empty path.
 */
export const HUGE_PAGES_ADDON = process.env.STREAMLLM_HUGE_PAGES_ADDON || fileURLToPath(new URL('../../build/Release/huge_pages.node', import.meta.url));

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

/** Why the addon cannot be loaded from `addonPath` because it is not there, or undefined where the file is. */
function addonMissing(addonPath: string): string | undefined {
  return existsSync(addonPath) ? undefined : `${addonPath} was not built (npm install builds native/huge_pages.c with node-gyp)`;
}

/** Why no memory can be advised here (the system; the addon not built), or undefined where one can: what the 2 MB-page tests skip on. */
export function hugePagesUnavailable(addonPath = HUGE_PAGES_ADDON): string | undefined {
  return systemWithout() ?? addonMissing(addonPath);
}

/**
 * The bytes from `address` to the end of the reservation that holds it, at
 * most `most`, as `maps` (the text of /proc/self/maps) shows it: the mapping
 * holding the address, then each adjacent anonymous mapping with no access
 * (---p). V8 reserves a wasm memory's maximum (with guard regions, more) and
 * makes pages accessible as the memory grows; how much depends on the engine
 * (guard regions or bounds checks; a maximum cut down when address space is
 * short), so it is read, not assumed. Undefined where no mapping holds the
 * address. (A neighbour's untouched reservation directly after, also ---p,
 * cannot be told apart: the kernel merges the two into one mapping.)
 */
export function reservedFrom(maps: string, address: number, most: number): number | undefined {
  let end: number | undefined;
  for (const line of maps.split('\n')) {
    const [range, perms, , , inode, path] = line.split(/\s+/);
    const [start, stop] = (range ?? '').split('-').map((hex) => parseInt(hex, 16));
    if (start === undefined || stop === undefined || !(stop > start)) continue;
    if (end === undefined) {
      if (start <= address && address < stop) end = stop;
    } else if (start === end && perms === '---p' && inode === '0' && !path) {
      end = stop;
    } else if (start >= end) {
      break;
    }
    if (end !== undefined && end - address >= most) break;
  }
  return end === undefined ? undefined : Math.min(end - address, most);
}

/** reservedFrom on this process's maps; undefined where they cannot be read. */
function reservedAt(address: number, most: number): number | undefined {
  try {
    return reservedFrom(readFileSync('/proc/self/maps', 'utf8'), address, most);
  } catch {
    return undefined;
  }
}

/**
 * Ask for 2 MB pages over the memory behind a WebAssembly memory's buffer:
 * its reservation from the first byte, at most `reservedBytes` (the
 * memory's maximum), so that later growth in place is covered too, and
 * nothing past it (madvise over a range that runs past the reservation fails
 * with ENOMEM after advising whatever mappings lie in it: another thread's
 * stack, another memory). Where the reservation cannot be read, the buffer's
 * bytes alone. Never throws: what comes back says whether the memory is
 * advised, or why not. `addonPath` is for tests.
 */
export function adviseHugePages(buffer: ArrayBufferLike, reservedBytes: number, addonPath = HUGE_PAGES_ADDON): PageAdvice {
  const system = systemWithout();
  if (system !== undefined) return { hugePages: false, why: system };
  if (buffer.byteLength === 0) return { hugePages: false, why: 'the memory is empty: no first byte to advise from' };
  const missing = addonMissing(addonPath); // (the system was asked above: its file read once)
  if (missing !== undefined) return { hugePages: false, why: missing };
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
  const address = addon.address(view);
  if (!Number.isSafeInteger(address) || address < 0) return { hugePages: false, why: `${addonPath} gave no address for the memory` };
  const bytes = Math.max(buffer.byteLength, reservedAt(address, reservedBytes) ?? 0);
  const errno = addon.advise(view, bytes);
  if (errno !== 0) return { hugePages: false, why: `madvise(MADV_HUGEPAGE) over ${bytes} bytes failed with errno ${errno}` };
  return { hugePages: true, address, bytes };
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
