// The shipped models: weights/manifest.json against the files it lists.
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync, statSync } from 'node:fs';
import t from 'tap';
import { loadModel } from '../src/model/load.js';
import { disposeModel } from '../src/model/weights.js';
import { loadTokenizer } from '../src/tokenizer/load.js';
import { type Manifest, MODEL_FILES, sha256 } from '../src/train/manifest.js';
import { variantOf } from '../src/train/variants.js';
import { initTestBackend } from './helpers.js';
import { WEIGHTS } from './paths.js';

const manifestFile = `${WEIGHTS}manifest.json`;

await initTestBackend();

t.test(
  'every file the manifest lists is there, with its sha256, under 10 MiB',
  { skip: !existsSync(manifestFile) && 'no weights/manifest.json yet' },
  async (t) => {
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as Manifest;
    t.ok(manifest.models.length > 0);
    t.ok(
      manifest.models.some((m) => m.name === manifest.default),
      `the default model '${manifest.default}' is listed`,
    );
    t.equal(sha256(`${WEIGHTS}${manifest.tokenizer!.file}`), manifest.tokenizer!.sha256, 'tokenizer.json');
    for (const m of manifest.models) {
      t.same(Object.keys(m.files).sort(), [...MODEL_FILES].sort(), `${m.name}: files`);
      for (const [file, hash] of Object.entries(m.files)) {
        const path = `${WEIGHTS}${m.name}/${file}`;
        t.equal(sha256(path), hash, `${m.name}/${file}`);
        t.ok(statSync(path).size <= 10 * 2 ** 20, `${m.name}/${file} under 10 MiB`);
      }
      // The zoo's tokenizer, or one of the model's own that its command builds first (the byte-level Backcopy models).
      const own = /^streamllm train-tokenizer --vocab (\d+) --out (\S+) && (streamllm train .*)$/.exec(m.command);
      if (own === null) t.equal(m.files['tokenizer.json'], manifest.tokenizer!.sha256, `${m.name}: the shared tokenizer`);
      else {
        t.equal(loadTokenizer(`${WEIGHTS}${m.name}`).vocabSize, Number(own[1]), `${m.name}: its own tokenizer, vocab ${own[1]}`);
        t.ok(own[3]!.includes(` --tokenizer ${own[2]} `), `${m.name}: trained with the tokenizer its command builds`);
      }
      const before = tf.memory().numTensors;
      const model = loadModel(`${WEIGHTS}${m.name}`);
      t.equal(variantOf(model.config), m.variant, `${m.name}: variant ${m.variant}`);
      const params = [
        model.weights.embedding,
        model.weights.sinkEmbedding,
        model.weights.finalNorm.weight,
        ...model.weights.layers.flatMap((l) => [l.attnNorm.weight, l.qkv.weight, l.out.weight, l.mlpNorm.weight, l.up.weight, l.down.weight, l.sinkLogits]),
      ];
      t.equal(
        params.reduce((n, p) => n + (p?.size ?? 0), 0),
        m.parameters,
        `${m.name}: ${m.parameters} parameters`,
      );
      t.equal(loadTokenizer(`${WEIGHTS}${m.name}`).vocabSize, model.config.vocabSize);
      t.ok(m.valLoss > 0 && m.trainLoss > 0 && m.steps > 0 && m.tokensSeen > 0, `${m.name}: losses ${m.trainLoss} / ${m.valLoss}`);
      t.match(own?.[3] ?? m.command, new RegExp(`^streamllm train --variant ${m.variant} `));
      disposeModel(model);
      t.equal(tf.memory().numTensors, before);
    }
  },
);
