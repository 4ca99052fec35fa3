// Where results go. Every command checks its outputs before the work starts
// (a read-only folder or a directory given as a file should cost nothing, not
// a whole run), never replaces an existing file or folder (or symbolic link,
// even to nothing: the link is replaced, never written through) unless the
// user said --force, and writes so that an interruption leaves either the
// old output or the new one, never a mix:
//
//   one file      written to FILE.RUN.tmp, renamed over FILE when complete
//   a folder      built in .NAME.RUN.staging beside it, swapped in whole
//
// RUN is the process's pid and a random token: PID-TOKEN. The pid says
// whether the run that left a name is still alive; the token tells this
// run's names from those of an earlier run that had the same pid (in a
// container every run can be pid 1): such a name is stale, never ours.
//
// Temporary names are removed on failure and when the process exits (a
// thrown error, process.exit). Ctrl-C (SIGINT) and SIGTERM are left to
// their default action, so they end the process at once, also inside a long
// synchronous loop: a signal handler in JavaScript would only run when that
// loop ended (`attn --samples 1000000` took 343 s to stop). A temporary
// name left by a killed run is removed by the next run writing the same
// output: a sibling named like ours with the pid of a process that no
// longer exists on this machine (process.kill(pid, 0): ESRCH), or with this
// process's pid and another token, is stale; one whose process is alive (or
// EPERM: someone else's) is another run's, kept. (Pids are those of this
// machine's, or container's, processes: runs in two containers writing into
// one shared folder cannot tell each other's names from stale ones.)
// The target itself is only ever replaced by a completed rename, so a
// killed run leaves the earlier output as it was.
import { randomBytes } from 'node:crypto';
import { closeSync, lstatSync, mkdirSync, openSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, type Stats, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { OutputError } from './errors.js';

/** This run's mark in its temporary names (see the top of this file). */
const RUN = `${process.pid}-${randomBytes(4).toString('hex')}`;

/** A run's mark in a temporary name, as a pattern's group: PID-TOKEN, or PID alone (a name left by an earlier version). */
const RUN_GROUP = '(\\d+(?:-[0-9a-f]+)?)';

function code(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? String(e);
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (e) {
    if (code(e) === 'ENOENT' || code(e) === 'ENOTDIR') return undefined;
    throw e;
  }
}

/**
 * The folder `path` would be created in must be one we can write: its
 * nearest existing ancestor must be a directory, and a file can be created
 * there (tried, not inferred from permission bits, which say yes to root on
 * a read-only mount).
 */
function checkCanCreate(path: string, what: string): void {
  let probe = dirname(resolve(path));
  let st = statOrUndefined(probe);
  while (st === undefined) {
    probe = dirname(probe);
    st = statOrUndefined(probe);
  }
  if (!st.isDirectory()) throw new OutputError(`${what}: ${probe} is not a directory`);
  probeWritable(probe, what);
}

/** An existing folder that results will be written into must be one: and writable. */
export function checkWritableDir(dir: string, what: string): void {
  const st = statOrUndefined(dir);
  if (st === undefined) throw new OutputError(`${what}: no such folder`);
  if (!st.isDirectory()) throw new OutputError(`${what}: is ${kindOf(st)}, expected a folder`);
  probeWritable(dir, what);
}

function probeWritable(dir: string, what: string): void {
  const probe = join(dir, `.streamllm-probe-${RUN}`); // (a name an earlier run with this pid, killed here, cannot have left)
  try {
    closeSync(openSync(probe, 'wx'));
    unlinkSync(probe);
  } catch (e) {
    throw new OutputError(`${what}: cannot write in ${dir} (${code(e)})`);
  }
}

/**
 * Check an output file before the work: `what` names it for the message
 * (e.g. "eval --csv out.csv"). An existing file is refused unless `force`;
 * a device, pipe or socket always (the file renamed over it would replace it).
 */
export function checkOutputFile(file: string, what: string, force = false): void {
  const st = statOrUndefined(file);
  if (st?.isDirectory()) throw new OutputError(`${what}: is a directory, expected a file name`);
  // (renamed over, a device or pipe would be replaced by a file: --force of /dev/full replaced the device)
  if (st !== undefined && !st.isFile()) throw new OutputError(`${what}: is ${kindOf(st)}, not a file; expected a file name`);
  if (st !== undefined && !force) throw new OutputError(`${what}: already exists (add --force to replace it)`);
  if (st === undefined && !force) refuseDanglingLink(file, what);
  checkCanCreate(file, what);
}

/**
 * A symbolic link whose target is missing is an entry all the same, though
 * stat finds nothing there: the file or folder renamed into its place
 * replaces the link (it never writes through it), so only with --force.
 */
function refuseDanglingLink(path: string, what: string): void {
  let link: string;
  try {
    link = readlinkSync(path);
  } catch {
    return; // (nothing there: ENOENT; or not a link)
  }
  throw new OutputError(`${what}: already exists, a symbolic link to ${link}, which is missing (add --force to replace the link)`);
}

/** Whether there is an entry at `path`, a symbolic link to nothing included (existsSync follows links). */
function entryExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** What a path that is not a folder is, for a message. */
function kindOf(st: Stats): string {
  if (st.isFile()) return 'a file';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a named pipe';
  if (st.isSocket()) return 'a socket';
  return 'neither a file nor a folder';
}

/**
 * Check an output folder before the work. An existing folder is refused
 * unless `force`, or unless `replaceable(dir)` says it is one this program
 * wrote and owns (e.g. an earlier report).
 */
export function checkOutputDir(dir: string, what: string, force = false, replaceable?: (dir: string) => boolean): void {
  const st = statOrUndefined(dir);
  if (st !== undefined && !st.isDirectory()) throw new OutputError(`${what}: is ${kindOf(st)}, expected a folder`);
  if (st !== undefined && !force && readdirSync(dir).length > 0 && !(replaceable?.(dir) ?? false)) {
    throw new OutputError(`${what}: already exists and is not empty (add --force to replace it)`);
  }
  if (st === undefined && !force) refuseDanglingLink(dir, what);
  checkCanCreate(dir, what);
}

/** Whether process `pid` exists on this machine: signal 0 checks without sending; EPERM means it does (another user's). */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return code(e) !== 'ESRCH'; // (an out-of-range pid throws otherwise: kept, not guessed at)
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Remove the entries of `dir` that `pattern` matches (a run's mark in its
 * first group: RUN_GROUP) left by a run that has ended: the temporary names
 * of a run killed by a signal, which removes nothing on its way out. This
 * run's own are kept; another with this process's pid is an earlier
 * process's, which has ended (this one has its pid now).
 */
function removeStale(dir: string, pattern: RegExp): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return; // (no folder yet: nothing left in it)
  }
  for (const name of names) {
    const mark = pattern.exec(name)?.[1];
    if (mark === undefined || mark === RUN) continue;
    const pid = Number(mark.split('-')[0]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || (pid !== process.pid && processExists(pid))) continue;
    try {
      rmSync(join(dir, name), { recursive: true, force: true });
    } catch {
      // (tidying only: another user's leftover in a shared folder, say, must not stop this run's output)
    }
  }
}

/** Write `data` (or whatever `write` writes to the descriptor) to `file` through a temporary name. */
export function writeFileAtomic(file: string, data: string | Uint8Array | ((fd: number) => void)): void {
  const tmp = `${file}.${RUN}.tmp`;
  removeStale(dirname(file), new RegExp(`^${escapeRegExp(basename(file))}\\.${RUN_GROUP}\\.tmp$`));
  try {
    mkdirSync(dirname(file), { recursive: true });
    const fd = openSync(tmp, 'w');
    try {
      if (typeof data === 'function') data(fd);
      else writeAll(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    if (e instanceof Error && 'code' in e) throw new OutputError(`cannot write ${file} (${code(e)})`);
    throw e;
  }
}

/** Write all of `bytes` to `fd` (writeSync may write less than asked). */
export function writeAll(fd: number, bytes: Uint8Array): void {
  const CHUNK = 1 << 26;
  for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done, Math.min(bytes.length - done, CHUNK));
}

/**
 * Staging folders alive in this process, removed if it exits with them
 * (an error thrown past the command, process.exit). No SIGINT or SIGTERM
 * handler: see the top of this file.
 */
const live = new Set<string>();

function removeLive(): void {
  for (const dir of live) rmSync(dir, { recursive: true, force: true });
  live.clear();
}

function track(dir: string): void {
  if (live.size === 0) process.on('exit', removeLive);
  live.add(dir);
}

function untrack(dir: string): void {
  live.delete(dir);
  if (live.size === 0) process.off('exit', removeLive);
}

/**
 * A multi-file output built beside its target and swapped in whole: write
 * into `path`, then commit() (replacing the target and everything in it) or
 * discard(). Made, it first removes the staging folders of the same target
 * left by runs that were killed (their pid no longer exists), and their
 * `.old` folders when the target is in place (a run killed after its swap).
 */
export class StagedDir {
  readonly path: string;
  private open = true;

  constructor(readonly target: string) {
    this.path = join(dirname(target), `.${basename(target)}.${RUN}.staging`);
    // (one listing of the folder; a dead run's .old folder only where the target is in place: while the target is
    // missing, .old may be the earlier output's only copy, a run killed between the two renames of commit())
    const stale = entryExists(target) ? 'staging|old' : 'staging';
    removeStale(dirname(target), new RegExp(`^\\.${escapeRegExp(basename(target))}\\.${RUN_GROUP}\\.(?:${stale})$`));
    rmSync(this.path, { recursive: true, force: true });
    try {
      mkdirSync(this.path, { recursive: true });
    } catch (e) {
      throw new OutputError(`cannot create ${this.path} (${code(e)})`);
    }
    track(this.path);
  }

  /**
   * Put the staged folder in the target's place. `andThen` (e.g. recording
   * it in an index) runs with the new folder in place; if it throws, the old
   * target is put back. The old target is removed only at the end.
   */
  commit(andThen?: () => void): void {
    if (!this.open) return;
    const old = join(dirname(this.target), `.${basename(this.target)}.${RUN}.old`);
    rmSync(old, { recursive: true, force: true });
    let hadOld = false;
    try {
      if (entryExists(this.target)) {
        renameSync(this.target, old);
        hadOld = true;
      }
      renameSync(this.path, this.target);
    } catch (e) {
      if (hadOld) renameSync(old, this.target);
      this.discard();
      throw new OutputError(`cannot put ${this.target} in place (${code(e)})`);
    }
    track(old);
    untrack(this.path);
    this.open = false;
    try {
      andThen?.();
    } catch (e) {
      // The new folder leaves the target's place by a rename, then goes: a
      // removal stopped part-way (a kill, an error) leaves no partial target
      // beside the earlier output's only copy, which a later run would take
      // for a finished swap's leftover, nor loses that copy on exit.
      untrack(old);
      renameSync(this.target, this.path);
      if (hadOld) renameSync(old, this.target);
      try {
        rmSync(this.path, { recursive: true, force: true });
      } catch {
        // (left under the staging name for the next run to remove: andThen's error is the one to report)
      }
      throw e;
    }
    rmSync(old, { recursive: true, force: true });
    untrack(old);
  }

  discard(): void {
    if (!this.open) return;
    rmSync(this.path, { recursive: true, force: true });
    this.open = false;
    untrack(this.path);
  }
}
