// writeFigure: both files complete under their final names, nothing left
// under a temporary name, even when a rename fails.
import t from 'tap';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../src/errors.js';
import { type Figure, writeFigure } from '../src/plot/index.js';

const figure: Figure = { svg: '<svg xmlns="http://www.w3.org/2000/svg"/>', png: Buffer.from([137, 80, 78, 71, 1, 2, 3]), width: 1, height: 1 };

t.test('writes NAME.svg and NAME.png, creating the folder', async (t) => {
  const dir = t.testdir();
  const paths = await writeFigure(join(dir, 'figs', 'fig3'), figure);
  t.same(paths, { svg: join(dir, 'figs', 'fig3.svg'), png: join(dir, 'figs', 'fig3.png') });
  t.equal(readFileSync(paths.svg, 'utf8'), figure.svg);
  t.ok(readFileSync(paths.png).equals(figure.png));
  t.same(readdirSync(join(dir, 'figs')).sort(), ['fig3.png', 'fig3.svg'], 'no temporary files left');
});

t.test('replaces an existing pair', async (t) => {
  const dir = t.testdir({ 'f.svg': 'old', 'f.png': 'old' });
  await writeFigure(join(dir, 'f'), figure);
  t.equal(readFileSync(join(dir, 'f.svg'), 'utf8'), figure.svg);
  t.same(readdirSync(dir).sort(), ['f.png', 'f.svg']);
});

t.test('a failed rename leaves no temporary file', async (t) => {
  const dir = t.testdir();
  // a folder where the PNG should go: the PNG's rename fails
  mkdirSync(join(dir, 'f.png'));
  writeFileSync(join(dir, 'keep.txt'), 'x');
  await t.rejects(writeFigure(join(dir, 'f'), figure));
  t.same(
    readdirSync(dir).filter((f) => f.endsWith('.tmp')),
    [],
    'no .tmp files',
  );
});

t.test('basePath with an extension is a UsageError', async (t) => {
  await t.rejects(writeFigure('out/fig3.png', figure), UsageError);
  await t.rejects(writeFigure('out/fig3.svg', figure), /writeFigure: basePath: "out\/fig3.svg" has an extension/);
  await t.rejects(writeFigure('', figure), /writeFigure: basePath: expected a path/);
});
