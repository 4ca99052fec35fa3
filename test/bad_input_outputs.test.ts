// Issue 9, classes 5 and 6: outputs, and the training runs commands read.
// A section each, in a block of its own; both use one finished tiny run.
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  type RmOptions,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { StagedDir, writeFileAtomic } from '../src/outputs.js';
import { FIXTURES, loadConformance, runCliInProcess } from './helpers.js';
import { finishedRun, refused, tree } from './outputs_helpers.js';
import { CLI, ROOT, tempDir } from './paths.js';
import { setUp } from './reproduce_helpers.js';

// A finished two-step training run: published by the outputs tests, resumed and
// damaged (in copies) by the runs tests.
const run = join(tempDir('streamllm-finished-run-'), 'run');
await finishedRun(run);

// Class 5: outputs. Every command checks where it will write before
// the work starts (exit 2, one line, nothing written), never replaces an
// existing file, folder or zoo model without --force, and swaps multi-file
// outputs (reports, published models) in whole, so that a failed or
// interrupted run leaves the earlier output exactly as it was.
{
  const dir = tempDir('streamllm-bad-outputs-');
  const model = `${FIXTURES}tiny-gqa.bin`;
  const ids = join(dir, 'ids.json');
  writeFileSync(ids, JSON.stringify(loadConformance().tokens.slice(0, 40)));
  const evalArgs = ['eval', '--model', model, '--tokens', ids];
  const initArgs = ['init', '--dim', '8', '--hidden', '16', '--layers', '1', '--heads', '2', '--vocab', '32', '--seq-len', '8'];
  const root = process.getuid?.() === 0;

  /** A folder the process cannot create files in: /sys for root (sysfs refuses even root), else a chmod 500 folder. */
  function readOnlyFolder(): string | undefined {
    if (!root) {
      const ro = join(dir, 'read-only');
      mkdirSync(ro, { recursive: true });
      chmodSync(ro, 0o500);
      return ro;
    }
    try {
      writeFileSync('/sys/.streamllm-test', '');
      return undefined; // writable after all: no read-only folder to test with here
    } catch {
      return existsSync('/sys') ? '/sys' : undefined;
    }
  }

  t.test('single-file outputs: checked before the work, never replaced without --force, no temporary file left', async (t) => {
    const existing = join(dir, 'existing.csv');
    writeFileSync(existing, 'keep me\n');
    const aDir = join(dir, 'a-folder');
    mkdirSync(aDir);
    const aFile = join(dir, 'a-file');
    writeFileSync(aFile, 'a file, not a folder\n');
    const checkpoint = join(dir, 'existing.bin');
    writeFileSync(checkpoint, 'not to be overwritten');
    const tokenizer = join(dir, 'existing-tokenizer.json');
    writeFileSync(tokenizer, '{"mine": true}');
    const before = tree(dir);
    await refused(t, [...evalArgs, '--csv', existing], `eval --csv ${existing}: already exists (add --force to replace it)`);
    await refused(t, [...evalArgs, '--csv', aDir], `eval --csv ${aDir}: is a directory, expected a file name`);
    await refused(t, [...evalArgs, '--csv', join(aFile, 'x.csv')], `eval --csv ${join(aFile, 'x.csv')}: ${aFile} is not a directory`);
    await refused(t, [...evalArgs, '--csv', join(aFile, 'deeper', 'x.csv')], `eval --csv ${join(aFile, 'deeper', 'x.csv')}: ${aFile} is not a directory`);
    await refused(t, [...initArgs, '--out', checkpoint], `init --out ${checkpoint}: already exists (add --force to replace it)`);
    await refused(t, [...initArgs, '--out', aDir], `init --out ${aDir}: is a directory, expected a file name`);
    // Refused before training: the message comes at once, not after the tokenizer is trained.
    await refused(
      t,
      ['train-tokenizer', '--vocab', '300', '--out', tokenizer],
      `train-tokenizer --out ${tokenizer}: already exists (add --force to replace it)`,
    );
    await refused(
      t,
      ['train-tokenizer', '--vocab', '300', '--out', join(aFile, 'tok.json')],
      `train-tokenizer --out ${join(aFile, 'tok.json')}: ${aFile} is not a directory`,
    );
    t.same(tree(dir), before, 'every file as it was; no *.tmp, no new file');

    const ro = readOnlyFolder();
    if (ro === undefined) t.comment('no read-only folder on this machine: that case is not run');
    else {
      await refused(
        t,
        [...evalArgs, '--csv', join(ro, 'nll.csv')],
        new RegExp(`^streamllm: eval --csv ${join(ro, 'nll.csv')}: cannot write in ${ro} \\((EACCES|EPERM|EROFS)\\)$`),
      );
      await refused(
        t,
        [...initArgs, '--out', join(ro, 'sub', 'm.bin')],
        new RegExp(`^streamllm: init --out ${join(ro, 'sub', 'm.bin')}: cannot write in ${ro} \\(`),
      );
      t.same(tree(dir), before);
    }

    // a named pipe (a device alike) is refused even with --force: the file renamed over it replaced it (/dev/full, as root)
    const pipe = join(dir, 'pipe');
    if (spawnSync('mkfifo', [pipe]).status === 0) {
      await refused(t, [...evalArgs, '--csv', pipe, '--force'], `eval --csv ${pipe}: is a named pipe, not a file; expected a file name`);
      t.ok(statSync(pipe).isFIFO(), 'the pipe is still there');
      rmSync(pipe);
    }

    // --force replaces, through a temporary name.
    const r = await runCliInProcess([...evalArgs, '--csv', existing, '--force']);
    t.equal(r.status, 0, r.stderr);
    t.match(readFileSync(existing, 'utf8'), /^position,dense\n1,/);
    const i = await runCliInProcess([...initArgs, '--out', checkpoint, '--force']);
    t.equal(i.status, 0, i.stderr);
    t.equal(
      readFileSync(checkpoint).length,
      7 * 4 + 4 * (32 * 8 + 8 + 3 * 8 * 8 + 8 * 8 + 8 + 3 * 16 * 8 + 8 + 8 * 4),
      'a llama2.c checkpoint of the asked shape',
    );
    t.same(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
    );
  });

  const { dir: textDir, common } = setUp();
  // 100 tokens: past the trained length (64), as few as a report needs; these tests are about the folder, not the numbers
  const reportArgs = (command: string[], out: string) => [...command, ...common.slice(0, 6), '--limit', '100', '--recompute-samples', '8', '--out', out];

  t.test('report folders: an earlier report is replaced whole; anything else needs --force', async (t) => {
    const out = join(textDir, 'report');
    const r = await runCliInProcess(reportArgs(['start'], out));
    t.equal(r.status, 0, r.stderr);
    const first = readFileSync(join(out, 'report.md'), 'utf8');
    writeFileSync(join(out, 'stale.png'), 'from an earlier run');
    const again = await runCliInProcess(reportArgs(['reproduce', 'curves'], out));
    t.equal(again.status, 0, again.stderr);
    t.notOk(existsSync(join(out, 'stale.png')), 'the earlier report was replaced whole, not mixed with the new one');
    t.not(readFileSync(join(out, 'report.md'), 'utf8'), first);
    t.same(
      readdirSync(textDir).filter((f) => f.startsWith('.')),
      [],
      'no staging folder left',
    );

    // Not a report: refused, untouched.
    const mine = join(textDir, 'mine');
    mkdirSync(mine);
    writeFileSync(join(mine, 'thesis.tex'), '\\section{mine}');
    const aFile = join(textDir, 'a-file');
    writeFileSync(aFile, 'x');
    const before = tree(textDir);
    await refused(t, reportArgs(['reproduce', 'curves'], mine), `reproduce --out ${mine}: already exists and is not empty (add --force to replace it)`);
    await refused(
      t,
      ['attn', ...common.slice(0, 6), '--samples', '2', '--out', mine],
      `attn --out ${mine}: already exists and is not empty (add --force to replace it)`,
    );
    await refused(t, reportArgs(['start'], aFile), `start --out ${aFile}: is a file, expected a folder`);
    // (a device, named as one: was 'is a file')
    await refused(t, reportArgs(['start'], '/dev/null'), 'start --out /dev/null: is a character device, expected a folder');
    await refused(t, reportArgs(['start'], join(aFile, 'sub')), `start --out ${join(aFile, 'sub')}: ${aFile} is not a directory`);
    t.same(tree(textDir), before, 'nothing changed, nothing left');
    const forced = await runCliInProcess([...reportArgs(['start'], mine), '--force']);
    t.equal(forced.status, 0, forced.stderr);
    t.notOk(existsSync(join(mine, 'thesis.tex')), '--force replaces the folder');
    t.ok(existsSync(join(mine, 'report.md')));
  });

  // A symbolic link to nothing is an entry, though stat finds nothing there:
  // the output renamed into its place replaces the link (written through,
  // never), so only with --force, as any existing output (before: eval
  // replaced it unasked, and a report's swap failed with ENOTDIR after the
  // whole run).
  t.test('a symbolic link to nothing is an existing output: the link replaced only with --force', async (t) => {
    const where = tempDir('streamllm-dangling-');
    const missing = join(where, 'gone', 'nll.csv');
    const link = join(where, 'nll.csv');
    symlinkSync(missing, link);
    await refused(
      t,
      [...evalArgs, '--csv', link],
      `eval --csv ${link}: already exists, a symbolic link to ${missing}, which is missing (add --force to replace the link)`,
    );
    t.equal(readlinkSync(link), missing, 'the link as it was');
    const r = await runCliInProcess([...evalArgs, '--csv', link, '--force']);
    t.equal(r.status, 0, r.stderr);
    t.ok(lstatSync(link).isFile(), "--force: the file in the link's place");
    t.notOk(existsSync(join(where, 'gone')), 'nothing written through the link');

    const report = join(where, 'report');
    const gone = join(where, 'gone-report');
    symlinkSync(gone, report);
    await refused(
      t,
      reportArgs(['start'], report),
      `start --out ${report}: already exists, a symbolic link to ${gone}, which is missing (add --force to replace the link)`,
    );
    const staged = new StagedDir(report); // what --force's run does after the check
    writeFileSync(join(staged.path, 'report.md'), 'the new report');
    staged.commit();
    t.equal(readFileSync(join(report, 'report.md'), 'utf8'), 'the new report', "the folder in the link's place");
    t.same(readdirSync(where).sort(), ['nll.csv', 'report'], "no old or staging name left; nothing made at the link's target");
  });

  t.test('a run that fails part-way leaves the earlier report as it was', async (t) => {
    const out = join(textDir, 'kept');
    const r = await runCliInProcess(reportArgs(['start'], out)); // any finished report
    t.equal(r.status, 0, r.stderr);
    const manifest = join(textDir, 'broken-manifest.json');
    writeFileSync(manifest, JSON.stringify({ default: 'gone', models: [{ name: 'gone', path: join(textDir, 'no-such-model') }] }));
    const before = tree(textDir);
    const failed = await runCliInProcess([...reportArgs(['reproduce', 'pretraining'], out), '--manifest', manifest]);
    t.equal(failed.status, 2);
    t.match(failed.stderr, /no-such-model: /);
    t.notMatch(failed.stderr, /\n\s+at /);
    t.same(tree(textDir), before, 'the earlier report, unchanged; no staging folder');
  });

  t.test('Ctrl-C during `reproduce all` leaves the earlier report as it was', async (t) => {
    const out = join(textDir, 'interrupted');
    const r = await runCliInProcess(reportArgs(['start'], out)); // any finished report
    t.equal(r.status, 0, r.stderr);
    const before = tree(textDir);
    const child = spawn(process.execPath, [CLI, ...reportArgs(['reproduce', 'all'], out)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // (its staging folder: .interrupted.PID-TOKEN.staging)
    const staging = () => readdirSync(textDir).find((f) => f.startsWith(`.interrupted.${child.pid}-`) && f.endsWith('.staging'));
    const code = await new Promise<{ status: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      const poll = setInterval(() => {
        if (staging() !== undefined) {
          clearInterval(poll);
          child.kill('SIGINT');
        }
      }, 20);
      child.on('exit', (status, signal) => {
        clearInterval(poll);
        resolve({ status, signal });
      });
    });
    t.ok(code.signal === 'SIGINT' || code.status === 130, `ended by the signal (${JSON.stringify(code)}; ${stderr.trim().split('\n').pop()})`);
    const left = Object.entries(tree(textDir)).filter(([path]) => !path.startsWith(`${staging()}/`));
    t.same(Object.fromEntries(left), before, 'the earlier report, unchanged (the staging folder aside)');
    new StagedDir(out).discard(); // the next run writing there
    t.same(tree(textDir), before, 'the staging folder the killed run left is removed by the next run for that target');
  });

  // A signal is not held back while a staging folder exists: a handler in
  // JavaScript only runs when a synchronous loop ends (attn --samples 1000000
  // took 343 s to stop after Ctrl-C), so the default action ends the process
  // and the next run removes what it left.
  const outputsModule = pathToFileURL(join(ROOT, 'dist', 'src', 'outputs.js')).href;

  t.test('Ctrl-C ends a process in a synchronous loop while it stages a folder', async (t) => {
    const target = join(dir, 'spin-report');
    const script =
      // (the test runner puts @tapjs/processinfo into every node it spawns, which holds SIGINT and SIGTERM with a
      // handler of its own: removed, so that the child holds them as the CLI does; after the import, since on Node 24
      // the runner's module hooks install that handler when the first module file is imported)
      `const { StagedDir } = await import(${JSON.stringify(outputsModule)});` +
      "process.removeAllListeners('SIGINT'); process.removeAllListeners('SIGTERM');" +
      `new StagedDir(${JSON.stringify(target)}); process.stdout.write('staged\\n');` +
      'const end = Date.now() + 60000; while (Date.now() < end);'; // (bounded, should the test die first)
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const ended = await new Promise<{ status: number | null; signal: NodeJS.Signals | null; killed: boolean }>((resolve) => {
      let killed = false;
      let fallback: NodeJS.Timeout | undefined;
      child.stdout.once('data', () => {
        child.kill('SIGINT');
        // not a speed bound: a process that ignores the signal spins for a minute; it is stopped after 5 s
        fallback = setTimeout(() => {
          killed = true;
          child.kill('SIGKILL');
        }, 5000);
      });
      child.on('exit', (status, signal) => {
        clearTimeout(fallback);
        resolve({ status, signal, killed });
      });
    });
    t.notOk(ended.killed, 'SIGINT ended it (it was not still spinning 5 s later)');
    t.ok(ended.signal === 'SIGINT' || ended.status === 130, `ended by SIGINT (${JSON.stringify(ended)}) ${stderr}`);
    t.notOk(existsSync(target), 'the target was never made');
    t.equal(readdirSync(dir).filter((f) => f.startsWith('.spin-report.')).length, 1, 'the staging folder it left, until a next run');
    new StagedDir(target).discard();
    t.same(
      readdirSync(dir).filter((f) => f.startsWith('.spin-report.')),
      [],
      'removed by the next StagedDir for the target',
    );
  });

  t.test("a killed run's temporary names are removed by the next run writing there; a live process's are kept", async (t) => {
    const dead = spawnSync(process.execPath, ['-e', '']).pid; // exited: no process has that pid (barring reuse in the meantime)
    const alive = process.ppid; // the test runner, running
    t.ok(dead !== undefined && dead > 0);
    const where = join(dir, 'stale');
    mkdirSync(where);
    const target = join(where, 'report');
    mkdirSync(target);
    writeFileSync(join(target, 'report.md'), 'the earlier report');
    for (const pid of [dead, alive]) {
      for (const suffix of ['staging', 'old']) {
        mkdirSync(join(where, `.report.${pid}.${suffix}`));
        writeFileSync(join(where, `.report.${pid}.${suffix}`, 'part.md'), 'left');
      }
      writeFileSync(join(where, `out.csv.${pid}.tmp`), 'left');
    }
    mkdirSync(join(where, `.other.${dead}.staging`)); // another target's
    const staged = new StagedDir(target);
    t.same(
      readdirSync(where)
        .filter((f) => f.startsWith('.report.'))
        .sort(),
      [`.report.${alive}.old`, `.report.${alive}.staging`, basename(staged.path)].sort(),
      "the dead pid's staging and old folders removed (the target is in place); the live one's and this run's kept",
    );
    writeFileSync(join(staged.path, 'report.md'), 'the new report');
    staged.commit();
    t.equal(readFileSync(join(target, 'report.md'), 'utf8'), 'the new report');
    writeFileAtomic(join(where, 'out.csv'), 'a,b\n');
    t.same(
      readdirSync(where).sort(),
      [`.other.${dead}.staging`, `.report.${alive}.old`, `.report.${alive}.staging`, 'out.csv', `out.csv.${alive}.tmp`, 'report'].sort(),
      "the dead pid's temporary file removed, the live one's kept; another target's staging folder untouched",
    );

    // With the target missing, an old folder may be the earlier output (a run killed between commit()'s two renames): kept.
    const lost = join(where, 'lost');
    mkdirSync(join(where, `.lost.${dead}.old`));
    mkdirSync(join(where, `.lost.${dead}.staging`));
    new StagedDir(lost).discard();
    t.same(
      readdirSync(where).filter((f) => f.startsWith('.lost.')),
      [`.lost.${dead}.old`],
      'the old folder kept while the target is missing; the staging folder removed',
    );
  });

  // A pid is not a run's alone: in a container every run can be pid 1, and a
  // pid is reused once its process has ended. A name left by an earlier run
  // with this process's pid is that run's (stale), not this run's own: before
  // the names carried a token, commit() took the earlier run's old folder for
  // its own and removed it, the earlier output's only copy.
  t.test("a name an earlier run with this process's pid left is stale, not this run's", async (t) => {
    const where = join(dir, 'same-pid');
    const target = join(where, 'report');
    const pid = process.pid;
    // a run with this pid killed between commit()'s two renames: the earlier report only in its old folder
    mkdirSync(join(where, `.report.${pid}.old`), { recursive: true });
    writeFileSync(join(where, `.report.${pid}.old`, 'report.md'), 'the earlier report');
    mkdirSync(join(where, `.report.${pid}.staging`));
    writeFileSync(join(where, `.report.${pid}.staging`, 'part.md'), 'left');
    writeFileSync(join(where, `out.csv.${pid}.tmp`), 'left');
    const staged = new StagedDir(target);
    t.same(
      readdirSync(where)
        .filter((f) => f.startsWith('.report.'))
        .sort(),
      [`.report.${pid}.old`, basename(staged.path)].sort(),
      'the staging folder removed; the old folder kept while the target is missing',
    );
    writeFileSync(join(staged.path, 'report.md'), 'the new report');
    staged.commit();
    t.equal(readFileSync(join(target, 'report.md'), 'utf8'), 'the new report');
    t.equal(readFileSync(join(where, `.report.${pid}.old`, 'report.md'), 'utf8'), 'the earlier report', "commit() left the earlier run's old folder alone");
    new StagedDir(target).discard(); // the next run writing there, the target in place
    writeFileAtomic(join(where, 'out.csv'), 'a,b\n');
    t.same(readdirSync(where).sort(), ['out.csv', 'report'], "the earlier run's old folder and temporary file removed as stale");
    t.equal(readFileSync(join(where, 'out.csv'), 'utf8'), 'a,b\n');
  });

  // commit(andThen) puts the earlier folder back where andThen throws. The new
  // folder leaves by a rename before it is removed, so a removal stopped
  // part-way (here by a path past PATH_MAX, ENAMETOOLONG; a kill alike) leaves
  // neither a partial target beside the earlier output's only copy (which the
  // next run takes for a finished swap's leftover and removes) nor loses that
  // copy on exit.
  t.test('commit: andThen failing puts the earlier folder back whole, though removing the new one stops part-way', async (t) => {
    const where = join(dir, 'unwound');
    t.teardown(() => spawnSync('rm', ['-rf', where])); // (rmSync cannot remove what is nested past PATH_MAX)
    const step = 'd'.repeat(200); // 30 folders deep: 6,000 bytes, made by relative steps
    const nest = (folder: string) => spawnSync('bash', ['-c', `cd "$1" && for i in $(seq 30); do mkdir ${step} && cd ${step}; done`, 'bash', folder]);
    // Node 20's and 22's rmSync stop at PATH_MAX; Node 24's (rewritten in C++) removes such a tree whole: there an
    // rmSync that fails on it as theirs do (ENAMETOOLONG) stands in
    const probe = join(dir, 'probe');
    mkdirSync(probe);
    t.equal(nest(probe).status, 0, 'the probe nested');
    const stopsAtPathMax = ((): boolean => {
      try {
        rmSync(probe, { recursive: true, force: true });
        return false;
      } catch {
        return true;
      }
    })();
    spawnSync('rm', ['-rf', probe]);
    const fs = await import('node:fs');
    const stopping = (path: string, options?: RmOptions): void => {
      if (!fs.existsSync(join(path, step))) return fs.rmSync(path, options);
      throw Object.assign(new Error(`ENAMETOOLONG: name too long, rm '${path}'`), { code: 'ENAMETOOLONG' });
    };
    const { StagedDir: Staged } = stopsAtPathMax
      ? await import('../src/outputs.js')
      : await t.mockImport<typeof import('../src/outputs.js')>('../src/outputs.js', { 'node:fs': { ...fs, rmSync: stopping } });
    t.comment(stopsAtPathMax ? "this Node's rmSync stops at PATH_MAX" : "this Node's rmSync removes past PATH_MAX: a stand-in that stops");
    const target = join(where, 'model');
    mkdirSync(target, { recursive: true });
    writeFileSync(join(target, 'model.bin'), 'the earlier model');
    const staged = new Staged(target);
    writeFileSync(join(staged.path, 'model.bin'), 'the new model');
    const nested = nest(staged.path);
    t.equal(nested.status, 0, String(nested.stderr));
    t.throws(
      () =>
        staged.commit(() => {
          throw new Error('manifest not written');
        }),
      /^manifest not written$/,
      "andThen's error",
    );
    t.same(readdirSync(target), ['model.bin'], 'the earlier folder in place');
    t.equal(readFileSync(join(target, 'model.bin'), 'utf8'), 'the earlier model');
    t.same(
      readdirSync(where).filter((f) => f.endsWith('.old')),
      [],
      'no old folder left',
    );
    t.ok(existsSync(join(staged.path, step)), 'the new folder left under its staging name, its removal stopped');

    // A leftover that cannot be removed (here that staging folder, as a killed run's: another user's in a shared folder
    // alike) does not stop the next run's output: removing leftovers is tidying.
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    renameSync(staged.path, join(where, `.model.${dead}.staging`));
    const next = new Staged(target);
    writeFileSync(join(next.path, 'model.bin'), 'the next model');
    next.commit();
    t.equal(readFileSync(join(target, 'model.bin'), 'utf8'), 'the next model', 'the next run writes its output');
  });

  t.test('publish: an existing zoo model (the default too) is replaced only with --force', async (t) => {
    const weights = join(dir, 'weights');
    const first = await runCliInProcess(['publish', '--run', run, '--name', 'tiny', '--weights', weights]);
    t.equal(first.status, 0, first.stderr);
    mkdirSync(join(weights, 'other'));
    writeFileSync(join(weights, 'other', 'notes.txt'), 'not a model of ours');
    const before = tree(dir);
    const manifestFile = join(weights, 'manifest.json');
    await refused(
      t,
      ['publish', '--run', run, '--name', 'tiny', '--weights', weights],
      `publish --name tiny: ${manifestFile} already lists a model 'tiny' (the default) (add --force to replace it)`,
    );
    await refused(
      t,
      ['publish', '--run', run, '--name', 'other', '--weights', weights],
      `publish --name other: ${join(weights, 'other')}: already exists and is not empty (add --force to replace it)`,
    );
    await refused(
      t,
      ['publish', '--run', run, '--name', 'x', '--weights', manifestFile],
      `publish: ${join(manifestFile, 'manifest.json')}: ${manifestFile} is not a directory`,
    );
    t.same(tree(dir), before, 'the model, the manifest and the other folder unchanged; nothing left');

    const forced = await runCliInProcess(['publish', '--run', run, '--name', 'tiny', '--dtype', 'F16', '--weights', weights, '--force']);
    t.equal(forced.status, 0, forced.stderr);
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as { default: string; models: { name: string; dtype: string }[] };
    t.same(
      manifest.models.map((m) => [m.name, m.dtype]),
      [['tiny', 'F16']],
      'replaced, listed once',
    );
    t.equal(manifest.default, 'tiny');
    t.same(readdirSync(weights).sort(), ['manifest.json', 'other', 'tiny'], 'no staging or old folder left');
  });
}

// Class 6: resuming and publishing a training run whose directory
// has lost or damaged a file, and publishing into a weights folder whose
// manifest is damaged. Each is refused before anything is written: exit 2,
// one line naming the file, the run and the weights folder unchanged.
{
  const dir = tempDir('streamllm-bad-runs-');

  /** A copy of the finished run with `damage` done to it. */
  function damaged(name: string, damage: (copy: string) => void): string {
    const copy = join(dir, name);
    cpSync(run, copy, { recursive: true });
    damage(copy);
    return copy;
  }

  const incomplete = (file: string) => `${file}: missing: the run's checkpoint is incomplete (restore the file, or start the run again)`;

  t.test('resume: a run missing a checkpoint file is refused, not reported as done', async (t) => {
    const intact = await runCliInProcess(['train', '--resume', run]);
    t.equal(intact.status, 0, intact.stderr);
    t.match(intact.stderr, /already finished/);
    for (const file of ['model.safetensors', 'optimizer.safetensors', 'config.json', 'tokenizer.json', 'train_log.jsonl']) {
      const copy = damaged(`no-${file}`, (c) => rmSync(join(c, file)));
      const before = tree(copy);
      await refused(t, ['train', '--resume', copy], incomplete(join(copy, file)));
      t.same(tree(copy), before, `${file}: the run directory unchanged, nothing recreated`);
    }
    const folder = damaged('model-is-a-folder', (c) => {
      rmSync(join(c, 'model.safetensors'));
      mkdirSync(join(c, 'model.safetensors'));
    });
    await refused(t, ['train', '--resume', folder], `${join(folder, 'model.safetensors')}: expected a file, found a folder`);
  });

  t.test('publish: a damaged manifest is refused before any folder is written', async (t) => {
    const cases: [string, RegExp][] = [
      ['{"models": [', /manifest.json: not a model manifest \(/],
      ['{"models": 3}', /manifest.json: not a model manifest \("models" must be an array\)/],
    ];
    for (const [text, message] of cases) {
      const weights = join(dir, `weights-${cases.findIndex((c) => c[0] === text)}`);
      mkdirSync(weights);
      writeFileSync(join(weights, 'manifest.json'), text);
      const before = tree(dir);
      await refused(t, ['publish', '--run', run, '--name', 'tiny', '--weights', weights], message);
      t.same(tree(dir), before, 'no model folder, no staging folder, the manifest as it was');
    }
  });

  t.test('publish: a run missing or damaging a file is refused before anything is written', async (t) => {
    const weights = join(dir, 'weights');
    const noModel = damaged('publish-no-model', (c) => rmSync(join(c, 'model.safetensors')));
    const badLog = damaged('publish-bad-log', (c) => writeFileSync(join(c, 'train_log.jsonl'), '{"step": 1, "loss": 8.3}\n{"step": 2, "lo'));
    const badConfig = damaged('publish-bad-config', (c) => writeFileSync(join(c, 'config.json'), '{"hidden_size": '));
    const noState = damaged('publish-no-state', (c) => rmSync(join(c, 'train_state.json')));
    const before = tree(dir);
    await refused(t, ['publish', '--run', noModel, '--name', 'tiny', '--weights', weights], incomplete(join(noModel, 'model.safetensors')));
    await refused(t, ['publish', '--run', badLog, '--name', 'tiny', '--weights', weights], `${join(badLog, 'train_log.jsonl')}: line 2 is not JSON`);
    await refused(
      t,
      ['publish', '--run', badConfig, '--name', 'tiny', '--weights', weights],
      `${join(badConfig, 'config.json')}: expected a model config, but the file is not valid JSON`,
    );
    await refused(t, ['publish', '--run', noState, '--name', 'tiny', '--weights', weights], /train_state.json: no training state here/);
    t.same(tree(dir), before, 'no weights folder, the runs as they were');
  });
}
