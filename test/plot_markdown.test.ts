// markdownTable: aligned source, numbers right-aligned with fixed decimals,
// missing cells as a dash, pipes escaped; wrong row lengths are errors.
import t from 'tap';
import { UsageError } from '../src/errors.js';
import { markdownTable } from '../src/plot/index.js';

t.test('aligned table', async (t) => {
  const md = markdownTable(
    ['cache', 'sinks', 'PPL'],
    [
      ['window', 0, 312.456],
      ['StreamingLLM', 4, 18.2],
      ['dense', null, 17.5],
    ],
  );
  t.equal(
    md,
    [
      '| cache        | sinks |    PPL |',
      '| :----------- | ----: | -----: |',
      '| window       |     0 | 312.46 |',
      '| StreamingLLM |     4 |  18.20 |',
      '| dense        |     – |  17.50 |',
      '',
    ].join('\n'),
  );
});

t.test('decimals, explicit alignment, escaping', async (t) => {
  const md = markdownTable(['a|b', 'x'], [['p|q', 1.23456]], { decimals: 3, align: ['center', 'left'] });
  t.equal(md, ['| a\\|b | x     |', '| :--: | :---- |', '| p\\|q | 1.235 |', ''].join('\n'));
  t.equal(markdownTable(['only'], []), '| only |\n| :--- |\n');
});

t.test('bad input', async (t) => {
  t.throws(() => markdownTable([], []), UsageError);
  t.throws(() => markdownTable(['a', 'b'], [[1]]), /markdownTable: rows\[0\]: has 1 cells; expected 2, one per column/);
  t.throws(() => markdownTable(['a'], [[1]], { decimals: -1 }), /decimals: expected an integer from 0 to 20/);
  t.throws(() => markdownTable(['a'], [[1]], { align: ['left', 'right'] }), /align: has 2 entries; expected 1/);
});
