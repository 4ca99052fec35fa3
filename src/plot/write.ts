// Writing a figure to disk: NAME.svg and NAME.png side by side. Both go to
// temporary names first and are renamed only once both are complete, so an
// interrupted run leaves the previous pair, never a truncated file.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fail } from './check.js';
import type { Figure } from './render.js';

/** Writes `${basePath}.svg` and `${basePath}.png`, creating the folder if needed; returns both paths. */
export async function writeFigure(basePath: string, figure: Figure): Promise<{ svg: string; png: string }> {
  if (typeof basePath !== 'string' || basePath === '') fail('writeFigure: basePath', 'expected a path such as "out/fig3"');
  if (/\.(svg|png)$/i.test(basePath)) {
    fail('writeFigure: basePath', `"${basePath}" has an extension; give it without, both .svg and .png are added`);
  }
  const targets = { svg: `${basePath}.svg`, png: `${basePath}.png` };
  const suffix = `.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const temps = { svg: targets.svg + suffix, png: targets.png + suffix };
  await mkdir(dirname(basePath), { recursive: true });
  try {
    await writeFile(temps.svg, figure.svg, 'utf8');
    await writeFile(temps.png, figure.png);
    await rename(temps.svg, targets.svg);
    await rename(temps.png, targets.png);
  } catch (err) {
    await Promise.all([rm(temps.svg, { force: true }), rm(temps.png, { force: true })]);
    throw err;
  }
  return targets;
}
