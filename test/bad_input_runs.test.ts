// Issue 9, class 6: resuming and publishing a training run whose directory
// has lost or damaged a file, and publishing into a weights folder whose
// manifest is damaged. Each is refused before anything is written: exit 2,
// one line naming the file, the run and the weights folder unchanged.
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCliInProcess } from './helpers.js';
import { finishedRun, refused, tree } from './outputs_helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'streamllm-bad-runs-'));
const run = join(dir, 'run');
await finishedRun(run);

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
