// A decode step (one token) of a pooled Llama model as ONE pool program
// (kernels/pool_program.ts): every layer's norms, products, head split and
// RoPE, attention and residual adds, then the final norm and the classifier
// with its pick, as steps that the pool's threads walk together, with a
// barrier after most (below), instead of some 31 pool jobs with JavaScript between
// them (the structure of llama2.c's run.c under OpenMP). Per token the
// calling thread only writes the token's embedding row and what the cache
// says (each layer's slot for the new key and value, the entries' place and
// counts, the rotation angles of the view's positions) into a table in the
// program's region, which one call of the pool's loops copies into the
// steps' records (kernels/decode_patch.ts), then runs it.
//
// The steps of a layer, and the barriers between them (| : every thread
// waits there until the step is done). q8:
//
//   NormOperand*  residual -> the q|k|v product's operand (normalised, quantised)
//   Q8            q|k|v = W_qkv x                                               |
//   QkvRope       keys and values into the cache's slot, queries per frame      |
//                 (kernels/qkv_rope.ts)
//   Attend        the heads over the cache's entries, in place -> the out       |
//                 product's operand
//   Quantize*     that operand's int16 blocks
//   Q8Add         residual += W_out o                                           |
//   NormOperand*  residual -> the gate|up product's operand
//   Q8Gated       SwiGLU(W_gate|up x) -> the down product's operand             |
//   Quantize*
//   Q8Add         residual += W_down g                                          |
//
// An attention-only model's layer (hidden size 0: the zoo's backcopy-attn,
// mix-attn) is its first five steps (six for q8), without the feed-forward's four, as
// transformer.ts and pooled_layers.ts skip it.
//
// float32: no Quantize, and the gate|up product (F32, a barrier) then
// Swiglu*, as pooled_layers.ts runs them (a fused float32 product and
// SwiGLU measured slower: kernels/pool_ops.ts GATED_SCRATCH_FLOATS). Then NormOperand*
// (the final norm) and Q8Pick or F32Pick (the classifier, each claim picking
// from its rows: kernels/pool_ops.ts PICK_RECORD_BYTES).
//
// The steps marked * run on every thread (pool_program.ts everyThread):
// each thread that takes part in the product after one runs it whole, into
// its own copy of the product's operand (Operand: one a thread), and that
// product's claims read their thread's copy, with no barrier between. They
// are the steps too small to split (a row of dim or hidden floats: well
// under a µs to 3 µs), which a barrier each used to cost, the other thread
// idle while one ran it: a layer has only the barriers its data needs,
// six (nine for float32 before, ten for q8), each where a step reads every
// row of the one before: 37 a 15M token (56 and 62). (QkvRope still has
// its own: the attention's units read its queries and the cache's new
// entry, one copy of each.)
//
// Every step is one of the loops the one-job-at-a-time path runs
// (pooled_layers.ts and transformer.ts pooledAttention: the same norms,
// products, rotations, attention loop and float32 adds), on the same
// operands, so the logits are the same bits; the program is used only where
// that path would run those loops (forwardLastValues, and forwardBatch's
// block of one token: a model whose layers and classifier are pooled, on
// any number of threads, a cache that places a token's entry in the pool's
// memory, the fused attention path). On one thread the caller runs the
// steps in order alone (WorkerPool.runProgram): no barriers, but one call
// a step instead of some 31 jobs' JavaScript between them; 15M q8 1.07x,
// f32 1.04x the one-job path in one process (bench/decode_ab.ts at 7dbb47f;
// again with bench/inproc_ab.ts --a :pool --b :pool-no-program, 15M f32:
// 1.044, 95% 1.037..1.050, A'/A 1.001, bench/RESULTS.md 12-01 01:42).
//
// One program per model (its weights, norms and shapes are fixed; a
// stream's cache is patched in per token): its operands live in a region
// of the pool's memory of its own.
import { float32View, hasDirectMemory } from '../../kernels/paths.js';
import type { WorkerPool } from '../../kernels/pool.js';
import { MAX_PROGRAM_STEPS } from '../../kernels/pool_control.js';
import { GATED_SCRATCH_FLOATS, PICK_RECORD_BYTES, PoolOp, splitRows } from '../../kernels/pool_ops.js';
import { ATTEND_ARG, attendArgs, attendRecordBytes, writeAttendHeadWords } from '../../kernels/pooled_attention.js';
import { BLOCK, FRAME, FRAME_WORDS, FRAMES_BLOCK_WORDS, MAX_PATCH_FRAMES, ROW, ROW_WORDS } from '../../kernels/decode_patch.js';
import { poolScratch, poolScratchFits } from '../../kernels/pool_scratch.js';
import { PoolProgram, type ProgramStep } from '../../kernels/pool_program.js';
import { qkvRopeArgs, qkvRopeRecordBytes, writeQkvRopeRecord } from '../../kernels/qkv_rope.js';
import { inverseFrequencies, ropeAnglesFrom } from '../../kernels/rope.js';
import { learnsExtraLogit, type SoftmaxVariant } from '../../kernels/softmax.js';
import { matrixBytes, notePickingProduct, type PooledMatrix, Q8_BLOCK } from '../../kernels/split_products.js';
import type { BlockView, EntryMemory, KVCache, LayerView } from '../cache/types.js';
import { inputNorm, poolEntryMemory, residualInPool } from './pooled_layers.js';
import type { LayerWeights, Model } from './weights.js';

/** The most frames a layer view may have for the program (the streaming view has two). */
const MAX_FRAMES = MAX_PATCH_FRAMES;

/**
 * Steps of a model's program: a layer's (the header's list; float32: no
 * Quantize, its SwiGLU a step of its own; an attention-only model's, the
 * hidden size 0: none of the feed-forward's four), then the final norm and
 * the classifier.
 */
const programSteps = (layers: number, q8: boolean, mlp: boolean) => layers * ((q8 ? 6 : 5) + (mlp ? 4 : 0)) + 2;

/** Whether the model's layers have a feed-forward (an attention-only model's, hidden size 0, have none: its empty matrices stay unplaced, placeWeights). */
const hasMlp = (model: Model) => model.config.hiddenDim !== 0;

/** The first layer's feed-forward as the program sizes it: the gate|up and down matrices' strides and the hidden size (all 0 where the layers have none). */
function mlpShape(model: Model): { upStride: number; downStride: number; hidden: number } {
  if (!hasMlp(model)) return { upStride: 0, downStride: 0, hidden: 0 };
  const first = model.weights.layers[0]!;
  return { upStride: first.up.pooled!.stride, downStride: first.down.pooled!.stride, hidden: first.up.pooled!.rows / 2 };
}

/**
 * A product's operand in the program's region: x padded to the matrix's
 * stride, then (q8) its int16 blocks and their scales; one copy a thread,
 * `copy` bytes apart (thread t's at x + t copy: the step that writes it runs
 * on every thread, the product's claims read their thread's; see the header).
 */
interface Operand {
  x: number;
  q: number;
  d: number;
  copy: number;
}

/** Bytes an operand of `stride` floats takes, on whole cache lines. */
const operandBytes = (stride: number) => lines(4 * stride + 2 * stride + (4 * stride) / Q8_BLOCK);
const lines = (bytes: number) => Math.ceil(bytes / 64) * 64;

/** Bytes of a layer's angles in the region: the keys' cos|sin, then each frame's. */
const anglesBytes = (rope: Model['config']['rope']) => lines(4 * (1 + MAX_FRAMES) * rope.rotaryDim);

/** Bytes of a layer's records, angles and frames block in the region (see LayerPlaces). */
const LAYER_BYTES = ({ heads, rope }: Model['config']) =>
  lines(qkvRopeRecordBytes(MAX_FRAMES)) + lines(heads * attendRecordBytes(MAX_FRAMES)) + anglesBytes(rope) + lines(4 * FRAMES_BLOCK_WORDS);

/** A layer's places in the program: its QkvRope record, its Attend records and step, its angles, its frames block and its row of the patch table (kernels/decode_patch.ts). */
interface LayerPlaces {
  rope: number;
  attendRecords: number;
  attendStep: number;
  /** The keys' cos|sin, then each frame's ([rotaryDim/2] each). */
  angles: number;
  /** Its view's frames block (used when the layer's view is not the layer before's). */
  frames: number;
  /** Its row of the patch table: the row's first int32 word in the pool's memory. */
  row: number;
}

export class DecodeProgram {
  private readonly pool: WorkerPool;
  private readonly program: PoolProgram;
  private readonly residual: number;
  private readonly qkvOut: number;
  /** Where the frames' rotated queries go ([heads, headDim] each, a frame's qBytes apart), shared by the layers. */
  private readonly queries: number;
  private readonly qBytes: number;
  private readonly attendOut: Operand;
  private readonly logits: number;
  private readonly records: number;
  private readonly layers: LayerPlaces[] = [];
  /** This token's view of each layer. */
  private readonly views: LayerView[] = [];
  /** The patch table (kernels/decode_patch.ts: a row a layer), a byte offset. */
  private readonly table: number;
  /**
   * Where each layer's values lie from its keys (bytes, as the Attend step's
   * int32 argument) as last settled; whether a layer's Attend step or its
   * records' words that stay may have to change (a placement that moved, a
   * view of another frame count, another softmax: settleLayers); the
   * softmax they were settled for.
   */
  private readonly settledValuesFromKeys: Int32Array;
  /**
   * Per layer, the cache's entries whose placement its row of the patch
   * table holds: their key and value arrays and their capacity (the
   * arrays' byte offsets and size checked and written when one of the
   * three changes: not by the entries object, which a cache may update in
   * place as its arrays move, KVCache.place), and where their values lie
   * from their keys.
   */
  private readonly placedKeys: (Float32Array | undefined)[] = [];
  private readonly placedValues: (Float32Array | undefined)[] = [];
  private readonly placedCapacity: Int32Array;
  private readonly placedValuesFromKeys: Int32Array;
  private unsettled = true;
  private settledSoftmax: SoftmaxVariant | undefined;
  private readonly memory: EntryMemory;
  private logitView: Float32Array | undefined;
  /** Tokens the program has run (for tests). */
  runs = 0;
  /** Each thread's scores of the Attend steps: their region's name, and the bytes a thread's take in it now. */
  private readonly scoresName: string;
  private scoresBytes = 0;
  /** rope.rotaryDim / 2; a key or value row's bytes; query heads a kv head serves. */
  private readonly half: number;
  private readonly rowBytes: number;
  private readonly group: number;
  /** The frame count and softmax variant each layer's Attend records' words that stay were written for (their layout depends on the count; the extra logit on the variant, which a model's config may change). */
  private readonly attendFrames: number[] = [];
  private readonly attendSoftmax: SoftmaxVariant[] = [];
  /** The embedding's rows [vocab, dim], a view kept between tokens: remade for another tensor or a detached buffer (the wasm backend's memory grew). */
  private embeddingRows: Float32Array | undefined;
  private embeddingOf: unknown;
  /** The rope's layout the records rotate by (with half: its rotary dimension), fixed when the program is made. */
  private readonly ropeLayout: Model['config']['rope']['layout'];
  /** The rope spec's inverse frequencies, and the spec and theta they are of (a changed spec gets its table again). */
  private frequencies: Float64Array;
  /** The same frequencies in the program's region (float64s: the angles are computed there, loops.wat ropeAngles). */
  private readonly frequenciesAt: number;
  private frequenciesOf: Model['config']['rope'];
  private frequenciesTheta: number;

  /** Set an argument of a step where it changed (setArg patches the pool's control words). */
  private patch(step: number, index: number, value: number): void {
    if (this.program.arg(step, index) !== value) this.program.setArg(step, index, value);
  }

  /** The program for `model`, or undefined where a step would not be the one-job path's loop (see pooledDecodeProgram). */
  static build(model: Model): DecodeProgram | undefined {
    const { config, weights } = model;
    const pool = model.pool!;
    const classifier = weights.pooledClassifier;
    if (classifier === undefined || config.headDim % 4 !== 0 || config.sinkToken) return undefined;
    // (a model of some 200 layers or more: more steps than a pool program holds)
    const mlp = hasMlp(model);
    if (programSteps(config.layers, classifier.format === 'q8', mlp) > MAX_PROGRAM_STEPS) return undefined;
    const { hidden } = mlpShape(model);
    if (!Number.isInteger(hidden) || hidden % 4 !== 0) return undefined;
    // every layer's matrices of the first's shapes (the operands are sized by them)
    const first = weights.layers[0]!;
    const sameShape = (a: PooledMatrix, b: PooledMatrix) => a.format === b.format && a.rows === b.rows && a.cols === b.cols;
    const matrices = (w: LayerWeights) => [w.qkv.pooled!, w.out.pooled!, ...(mlp ? [w.up.pooled!, w.down.pooled!] : [])];
    if (!weights.layers.every((w) => matrices(w).every((m, i) => sameShape(m, matrices(first)[i]!) && m.format === classifier.format))) return undefined;
    const norms = [...weights.layers.flatMap((w) => [w.attnNorm.weight, ...(mlp ? [w.mlpNorm.weight] : [])]), weights.finalNorm.weight].map((t) =>
      inputNorm(model, t),
    );
    if (norms.some((n) => n.at === undefined)) return undefined;
    // (a large model's weights may leave no room for the region: then the one-job path, as for its other operands)
    if (!poolScratchFits(pool, regionName(model), DecodeProgram.regionSizes(model, classifier).reduce((a, b) => a + b, 0) + 64)) return undefined;
    return new DecodeProgram(model, pool, classifier);
  }

  /** The program region's parts, in bytes: [residual | eps | operands: attention's, out's, mlp's, down's, final | q|k|v | product | gate|up | logits | picks | queries | per layer: records, angles, frames | patch table | the rope's inverse frequencies (float64)]. */
  private static regionSizes(model: Model, classifier: PooledMatrix): number[] {
    const { config, weights } = model;
    const { dim, heads, headDim, layers } = config;
    const first = weights.layers[0]!;
    const [qkv, out] = [first.qkv.pooled!, first.out.pooled!];
    // (an attention-only model: no mlp or down operand, no gate|up)
    const { upStride, downStride, hidden } = mlpShape(model);
    const group = splitRows(classifier.format === 'q8' ? PoolOp.Q8Pick : PoolOp.F32Pick);
    const copies = (stride: number) => model.pool!.threads * operandBytes(stride);
    return [
      lines(4 * dim),
      64,
      copies(qkv.stride),
      copies(out.stride),
      copies(upStride),
      copies(downStride),
      copies(classifier.stride),
      lines(4 * qkv.rows),
      lines(4 * dim),
      lines(4 * Math.max(2 * hidden, GATED_SCRATCH_FLOATS * hidden)),
      lines(4 * classifier.rows),
      lines(PICK_RECORD_BYTES * Math.ceil(classifier.rows / group)),
      MAX_FRAMES * lines(4 * heads * headDim),
      layers * LAYER_BYTES(config),
      lines(4 * ROW_WORDS * layers),
      lines(8 * (config.rope.rotaryDim / 2)),
    ];
  }

  private constructor(
    private readonly model: Model,
    pool: WorkerPool,
    private readonly classifier: PooledMatrix,
  ) {
    this.pool = pool;
    this.memory = poolEntryMemory(pool);
    this.scoresName = `${regionName(model)} scores`;
    this.half = model.config.rope.rotaryDim / 2;
    this.ropeLayout = model.config.rope.layout;
    this.rowBytes = 4 * model.config.headDim;
    this.group = model.config.heads / model.config.kvHeads;
    this.frequenciesOf = model.config.rope;
    this.frequenciesTheta = model.config.rope.theta;
    this.frequencies = inverseFrequencies(model.config.rope);
    this.settledValuesFromKeys = new Int32Array(model.config.layers);
    this.placedCapacity = new Int32Array(model.config.layers);
    this.placedValuesFromKeys = new Int32Array(model.config.layers);
    const { config, weights } = model;
    const { dim, heads, headDim } = config;
    const q8 = classifier.format === 'q8';
    const first = weights.layers[0]!;
    const qkv = first.qkv.pooled!;
    const out = first.out.pooled!;
    const mlpLayers = hasMlp(model);
    const { upStride, downStride, hidden } = mlpShape(model);
    this.qBytes = lines(4 * heads * headDim);
    const ropeBytes = lines(qkvRopeRecordBytes(MAX_FRAMES));
    const attendBytes = lines(heads * attendRecordBytes(MAX_FRAMES));
    const sizes = DecodeProgram.regionSizes(model, classifier);
    const base = lines(poolScratch(pool, regionName(model), sizes.reduce((a, b) => a + b, 0) + 64));
    const at: number[] = [];
    sizes.reduce((offset, bytes) => (at.push(offset), offset + bytes), base);
    const operand = (x: number, stride: number): Operand => ({ x, q: x + 4 * stride, d: x + 6 * stride, copy: operandBytes(stride) });
    this.residual = at[0]!;
    const epsAt = at[1]!;
    const attn = operand(at[2]!, qkv.stride);
    this.attendOut = operand(at[3]!, out.stride);
    const mlp = operand(at[4]!, upStride);
    const gatedIn = operand(at[5]!, downStride);
    const final = operand(at[6]!, classifier.stride);
    this.qkvOut = at[7]!;
    const product = at[8]!;
    const gateUp = at[9]!;
    this.logits = at[10]!;
    this.records = at[11]!;
    this.queries = at[12]!;
    const perLayer = at[13]!;
    this.table = at[14]!;
    this.frequenciesAt = at[15]!;
    new Float64Array(pool.memory.buffer, epsAt, 1)[0] = config.normEps;
    new Float64Array(pool.memory.buffer, this.frequenciesAt, this.half).set(this.frequencies);

    const steps: ProgramStep[] = [];
    // (the steps that write a product's operand run on every thread, each into its own copy: see the header)
    const norm = (t: Parameters<typeof inputNorm>[1], m: PooledMatrix, into: Operand) =>
      steps.push({
        op: PoolOp.NormOperand,
        args: [this.residual, inputNorm(model, t).at!, epsAt, dim, m.stride, into.x, q8 ? into.q : 0, into.d],
        rows: 1,
        weightBytes: 4 * dim,
        everyThread: true,
        perThread: { args: q8 ? [5, 6, 7] : [5], bytes: into.copy },
      });
    // (x written once, by the step before: each thread quantises it into its own copy's blocks)
    const quantize = (m: PooledMatrix, x: Operand) => {
      if (q8)
        steps.push({
          op: PoolOp.Quantize,
          args: [x.x, m.stride, x.q, x.d],
          rows: 1,
          weightBytes: 4 * m.stride,
          everyThread: true,
          perThread: { args: [2, 3], bytes: x.copy },
        });
    };
    // a product's claims read their thread's copy of the operand (x for float32, its blocks for q8)
    const operandArgs = (format: PooledMatrix['format'], x: Operand) => ({ args: format === 'f32' ? [1] : [1, 2], bytes: x.copy });
    // a product of one token: the operand's x (float32) or its blocks (q8), into `into` ([rows]), adding into the residual (F32Add, Q8Add) or not
    // (xOneCopy: a float32 x that a split step wrote, one copy for every thread: the out product's, Attend's output)
    const productStep = (m: PooledMatrix, x: Operand, into: number, adds: boolean, xOneCopy = false) => {
      const bytes = matrixBytes(m.format, m.rows, m.cols);
      if (m.format === 'f32')
        steps.push({
          op: adds ? PoolOp.F32Add : PoolOp.F32,
          args: [m.data, x.x, into, m.stride, 1, m.rows, ...(adds ? [this.residual] : [])],
          rows: m.rows,
          weightBytes: bytes,
          ...(xOneCopy ? {} : { perThread: operandArgs(m.format, x) }),
        });
      else
        steps.push({
          op: adds ? PoolOp.Q8Add : PoolOp.Q8,
          args: [m.data, x.q, x.d, into, m.stride, 1, m.rows, ...(adds ? [this.residual] : [])],
          rows: m.rows,
          weightBytes: bytes,
          perThread: operandArgs(m.format, x),
        });
    };
    weights.layers.forEach((w, l) => {
      const layerAt = perLayer + l * LAYER_BYTES(config);
      const angles = layerAt + ropeBytes + attendBytes;
      const places: LayerPlaces = {
        rope: layerAt,
        attendRecords: layerAt + ropeBytes,
        attendStep: 0,
        angles,
        frames: angles + anglesBytes(config.rope),
        row: this.table / 4 + ROW_WORDS * l,
      };
      // the record's fixed words; a token's slot, angles and frames are patched per token (run), as is the table's row but its records
      const rotation = { pairs: config.rope.layout === 'pairs', rotaryDim: config.rope.rotaryDim };
      writeQkvRopeRecord(pool, places.rope, config, rotation, { qkv: this.qkvOut, keyAngles: { cos: 0, sin: 0 }, keys: 0, values: 0, kvStride: 0, frames: [] });
      const ints = pool.views().ints;
      ints[places.row + ROW.rope] = places.rope;
      ints[places.row + ROW.attend] = places.attendRecords;
      norm(w.attnNorm.weight, w.qkv.pooled!, attn);
      productStep(w.qkv.pooled!, attn, this.qkvOut, false);
      steps.push({ op: PoolOp.QkvRope, args: qkvRopeArgs(places.rope, 0), rows: 1, weightBytes: 0 });
      // attention: a unit a head (its bytes vary with the cache: enough to cut every head apart)
      places.attendStep = steps.length;
      steps.push({
        op: PoolOp.Attend,
        args: attendArgs(places.attendRecords, 1, 0, headDim, 0, 0), // (frames, values and scores patched per token)
        rows: heads,
        weightBytes: Math.max(pool.splitMinBytes, pool.unitBytes) * heads,
      });
      quantize(w.out.pooled!, this.attendOut);
      productStep(w.out.pooled!, this.attendOut, product, true, true); // (x one copy: Attend's output; q8 reads its thread's blocks)
      if (!mlpLayers) {
        // an attention-only layer: the residual goes on to the next (transformer.ts and pooled_layers.ts layer: no feed-forward)
        this.layers.push(places);
        return;
      }
      norm(w.mlpNorm.weight, w.up.pooled!, mlp);
      const upM = w.up.pooled!;
      if (q8)
        steps.push({
          op: PoolOp.Q8Gated,
          args: [upM.data, mlp.q, mlp.d, gateUp, upM.stride, gatedIn.x, hidden],
          rows: hidden,
          weightBytes: matrixBytes('q8', upM.rows, upM.cols),
          perThread: operandArgs('q8', mlp),
        });
      else {
        productStep(upM, mlp, gateUp, false);
        steps.push({
          op: PoolOp.Swiglu,
          args: [gateUp, hidden, gatedIn.x],
          rows: 1,
          weightBytes: 12 * hidden,
          everyThread: true,
          perThread: { args: [2], bytes: gatedIn.copy },
        });
      }
      quantize(w.down.pooled!, gatedIn);
      productStep(w.down.pooled!, gatedIn, product, true);
      this.layers.push(places);
    });
    norm(weights.finalNorm.weight, classifier, final);
    const bytes = matrixBytes(classifier.format, classifier.rows, classifier.cols);
    if (q8)
      steps.push({
        op: PoolOp.Q8Pick,
        args: [classifier.data, final.q, final.d, this.logits, classifier.stride, 1, classifier.rows, this.records],
        rows: classifier.rows,
        weightBytes: bytes,
        perThread: operandArgs('q8', final),
      });
    else
      steps.push({
        op: PoolOp.F32Pick,
        args: [classifier.data, final.x, this.logits, classifier.stride, 1, classifier.rows, this.records],
        rows: classifier.rows,
        weightBytes: bytes,
        perThread: operandArgs('f32', final),
      });
    if (steps.length !== programSteps(config.layers, q8, mlpLayers))
      throw new Error(`DecodeProgram: ${steps.length} steps, programSteps says ${programSteps(config.layers, q8, mlpLayers)}`);
    this.program = new PoolProgram(pool, steps);
  }

  /**
   * Token `id`'s decode step through `cache`, whose block of one token
   * `block` has begun: the logits [vocab] (a view of the pool's memory,
   * valid until the pool's next product; their pick is pickedArgmax's), with
   * the token's key and value written into the cache's slots; undefined,
   * with nothing written to the cache, where a layer's view, the cache's
   * placement or the model's rope is not what the program runs (the caller
   * then runs the one-job-at-a-time path).
   */
  run(id: number, cache: KVCache, block: BlockView): Float32Array | undefined {
    const config = this.model.config;
    if (cache.place === undefined) return undefined;
    const extraLogit = learnsExtraLogit(config.softmax);
    const { floats, ints } = this.pool.views();
    if ((config.rope !== this.frequenciesOf || config.rope.theta !== this.frequenciesTheta) && !this.refreshFrequencies()) return undefined;
    // everything checked, every layer placed, before anything is written but the patch table and the angles
    const most = this.placeLayers(cache, block, extraLogit, floats, ints);
    if (most < 0) return undefined;
    // each thread's scores: room for the most entries a query sees (the region grown when a cache grows)
    const scoresBytes = Math.ceil((4 * Math.max(1, most)) / 16) * 16;
    if (scoresBytes > this.scoresBytes && !this.growScores(scoresBytes)) return undefined; // (nothing written to the cache yet)
    // the token's embedding row is the residual stream's start
    const dim = config.dim;
    const table = this.embeddingTable(); // [vocab, dim]
    floats.set(table.subarray(id * dim, (id + 1) * dim), this.residual / 4);
    if (this.unsettled || extraLogit || config.softmax !== this.settledSoftmax) this.settleLayers(floats, ints, extraLogit);
    this.pool.shared.patchDecodeLayers(this.table, config.layers, config.heads, this.group, this.rowBytes);
    this.program.run();
    this.runs++;
    notePickingProduct(this.classifier, this.logits, this.records);
    const buffer = this.pool.memory.buffer;
    if (this.logitView?.buffer !== buffer) this.logitView = new Float32Array(buffer, this.logits, this.classifier.rows);
    return this.logitView;
  }

  // run()'s parts: V8 runs the per-token JavaScript as bytecode through a
  // process's first ~180 tokens and then compiles it on a background thread
  // that takes one of the pool's cores, so there is little of it: one loop
  // over the layers (placeLayers: what the cache says and each distinct
  // view's angles and frames, into the patch table), then the records'
  // words from the table in WebAssembly (decode_patch.ts), with plain loops
  // and numbers, no arrays or objects made (one function: a second, called
  // once a token, reached TurboFan only some 400 tokens later, in the tokens
  // bench/decode times warm); the rare paths (a cache's growth, a view's
  // frame count changing, a new embedding or rope spec) are functions of
  // their own that it does not inline while they do not run. RoPE's angles
  // of each distinct position are computed in WebAssembly (loops.wat
  // ropeAngles: fdlibm's cos and sin, kernels/fdlibm.ts's bits), not
  // by ropeAnglesFrom, which V8 ran as bytecode through the first ~110 tokens
  // and then compiled on a background thread during the tokens bench/decode
  // times: 4.6 -> 2.1 µs a 15M token there, 2.3 -> 1.5 later (bench/RESULTS.md,
  // "The caller's per-token path by piece").

  /** The embedding's rows [vocab, dim]: the view kept from the tokens before while it is of the model's tensor and its buffer is not detached (a non-shared wasm memory's grow detaches it: length 0). */
  private embeddingTable(): Float32Array {
    const rows = this.embeddingRows;
    return rows !== undefined && this.embeddingOf === this.model.weights.embedding && rows.length !== 0 ? rows : this.viewEmbedding();
  }

  /** The embedding's rows [vocab, dim] as a view, made through tfjs (float32View: its backend lookups stay out of the per-token path). */
  private viewEmbedding(): Float32Array {
    const embedding = this.model.weights.embedding;
    this.embeddingRows = float32View(embedding);
    this.embeddingOf = embedding;
    return this.embeddingRows;
  }

  /**
   * The rope spec's inverse frequencies again (the model's config has
   * another spec or theta); false where the spec has another rotary
   * dimension or layout than the records rotate by and have room for (the
   * one-job path then runs the token).
   */
  private refreshFrequencies(): boolean {
    const rope = this.model.config.rope;
    if (rope.rotaryDim !== 2 * this.half || rope.layout !== this.ropeLayout) return false;
    this.frequencies = inverseFrequencies(rope);
    new Float64Array(this.pool.memory.buffer, this.frequenciesAt, this.half).set(this.frequencies);
    this.frequenciesOf = rope;
    this.frequenciesTheta = rope.theta;
    return true;
  }

  /**
   * Check each layer's view and the cache's placement of its entry, and
   * write the placement into the layer's row of the patch table; each
   * distinct view's angles and frames into the frames block of its first
   * layer (a frame's query at the key's position: the keys' angles), which
   * the rows of the layers that share it name: the most entries a layer's
   * query sees this token, or -1 where the program does not run this token.
   * A view the layers share (the caches' usual: sharedLayers) is checked,
   * counted and written once.
   */
  private placeLayers(cache: KVCache, block: BlockView, extraLogit: boolean, floats: Float32Array, ints: Int32Array): number {
    const { layers, kvHeads, headDim } = this.model.config;
    const scale = this.model.config.rope.scale;
    const frequenciesAt = this.frequenciesAt;
    const shared = this.pool.shared;
    const half = this.half;
    const views = this.views;
    const placedKeys = this.placedKeys;
    const placedValues = this.placedValues;
    const placedCapacity = this.placedCapacity;
    const rowBytes = this.rowBytes;
    let most = 0;
    let F = 0;
    let frames = 0; // the view's frames block, a byte offset
    let moved = false;
    for (let l = 0; l < layers; l++) {
      const view = block.layer(l);
      const places = this.layers[l]!;
      if (l === 0 || view !== views[l - 1]) {
        const viewFrames = view.frames;
        F = viewFrames.length;
        if (view.wantsAttention || view.entryPositions !== undefined || F > MAX_FRAMES || view.keyPositions.length !== 1) return -1;
        const angles = places.angles;
        const keyPosition = view.keyPositions[0]!;
        if (shared.ropeAngles(keyPosition / scale, frequenciesAt, half, angles, angles + 4 * half) === 0) this.anglesOfFarPosition(keyPosition, angles, floats);
        frames = places.frames;
        const words = frames / 4;
        ints[words + BLOCK.frames] = F;
        ints[words + BLOCK.keysCos] = angles;
        ints[words + BLOCK.keysSin] = angles + 4 * half;
        let n = 0;
        for (let f = 0; f < F; f++) {
          const frame = viewFrames[f]!;
          const lo = frame.rowRanges[0]!;
          const hi = frame.rowRanges[1]!;
          n += hi - lo;
          const position = frame.queryPositions[0]!;
          let cos = angles;
          if (position !== keyPosition) {
            cos = angles + 4 * (f + 1) * 2 * half;
            if (shared.ropeAngles(position / scale, frequenciesAt, half, cos, cos + 4 * half) === 0) this.anglesOfFarPosition(position, cos, floats);
          }
          const at = words + 3 + FRAME_WORDS * f;
          ints[at + FRAME.cos] = cos;
          ints[at + FRAME.sin] = cos + 4 * half;
          ints[at + FRAME.queries] = this.queries + f * this.qBytes;
          ints[at + FRAME.lo] = lo;
          ints[at + FRAME.hi] = hi;
        }
        if (n > most) most = n;
      }
      views[l] = view;
      const place = cache.place!(l);
      if (place === undefined) return -1;
      const entries = place.entries;
      const row = places.row;
      const { keys, values, shape } = entries;
      const capacity = shape[1];
      if (keys !== placedKeys[l] || values !== placedValues[l] || capacity !== placedCapacity[l]) {
        // (else the arrays and size of the token before: checked and written then)
        if (entries.memory !== this.memory || shape[0] !== kvHeads || shape[2] !== headDim) return -1;
        ints[row + ROW.keys] = keys.byteOffset;
        ints[row + ROW.values] = values.byteOffset;
        ints[row + ROW.kvBytes] = capacity * rowBytes;
        placedKeys[l] = keys;
        placedValues[l] = values;
        placedCapacity[l] = capacity;
        this.placedValuesFromKeys[l] = (values.byteOffset - keys.byteOffset) | 0;
      }
      if (extraLogit && this.model.weights.layers[l]!.sinkLogits === undefined) return -1;
      ints[row + ROW.slot] = place.at;
      ints[row + ROW.frames] = frames;
      // (compared with the settled: a token that returns -1 after this layer settles nothing, and the next finds it moved again)
      moved = moved || this.placedValuesFromKeys[l] !== this.settledValuesFromKeys[l] || F !== this.attendFrames[l];
    }
    // (stored every token: a store that the compiled loop first met at a
    // cache's growth would deoptimise it, and V8 would compile it again)
    this.unsettled = this.unsettled || moved;
    return most;
  }

  /** RoPE's angles of a position where one is past what loops.wat ropeAngles reduces (2^20 pi/2: a position past some 1,647,000 times the rope's scale): in JavaScript, the same bits, cos at byte `at`, sin after it. */
  private anglesOfFarPosition(position: number, at: number, floats: Float32Array): void {
    ropeAnglesFrom(position, this.model.config.rope.scale, this.frequencies, floats, at / 4, floats, at / 4 + this.half);
  }

  /**
   * Room for each thread's scores of at least `scoresBytes` (false: none in
   * the pool's memory), patched into every Attend step: twice the room
   * before where that fits, so that a cache that grows by a token a step
   * grows it seldom (by 16 bytes, it was every fourth token).
   */
  private growScores(needed: number): boolean {
    const pool = this.pool;
    const doubled = Math.max(needed, 2 * this.scoresBytes);
    const scoresBytes = poolScratchFits(pool, this.scoresName, pool.threads * doubled) ? doubled : needed;
    if (!poolScratchFits(pool, this.scoresName, pool.threads * scoresBytes)) return false;
    const scoresAt = poolScratch(pool, this.scoresName, pool.threads * scoresBytes);
    this.scoresBytes = scoresBytes;
    for (const places of this.layers) {
      this.patch(places.attendStep, ATTEND_ARG.scores, scoresAt);
      this.patch(places.attendStep, ATTEND_ARG.scoresBytes, scoresBytes);
    }
    return true;
  }

  /**
   * The words of each layer's Attend step and records that stay from token
   * to token, where placeLayers found they may have changed: the records'
   * (their queries, extra logit, output row) when the frame count or softmax
   * changes, and every token for learned sink logits (a tensor's values,
   * read as the one-job path reads them); the step's frames and where the
   * values lie from the keys.
   */
  private settleLayers(floats: Float32Array, ints: Int32Array, extraLogit: boolean): void {
    const softmax = this.model.config.softmax;
    for (let l = 0; l < this.model.config.layers; l++) {
      const F = this.views[l]!.frames.length;
      if (this.attendFrames[l] !== F || this.attendSoftmax[l] !== softmax || extraLogit) this.writeAttendHeads(l, F, softmax, floats, ints);
      const step = this.layers[l]!.attendStep;
      const row = this.layers[l]!.row;
      const valuesFromKeys = (ints[row + ROW.values]! - ints[row + ROW.keys]!) | 0; // (the table's words, as placeLayers wrote them this token)
      if (this.program.arg(step, ATTEND_ARG.frames) !== F || this.program.arg(step, ATTEND_ARG.valuesFromKeys) !== valuesFromKeys)
        this.patchAttendStep(step, F, valuesFromKeys);
      this.settledValuesFromKeys[l] = valuesFromKeys;
    }
    this.unsettled = false;
    this.settledSoftmax = softmax;
  }

  /** An Attend step's arguments: its frame count and where the values lie from the keys. */
  private patchAttendStep(step: number, F: number, valuesFromKeys: number): void {
    this.program.setArg(step, ATTEND_ARG.frames, F);
    this.program.setArg(step, ATTEND_ARG.valuesFromKeys, valuesFromKeys);
  }

  /** Layer l's Attend records' words that stay while its view has F frames (and the model its sink logits). */
  private writeAttendHeads(l: number, F: number, softmax: SoftmaxVariant, floats: Float32Array, ints: Int32Array): void {
    const heads = this.model.config.heads;
    const sinks = learnsExtraLogit(softmax) ? float32View(this.model.weights.layers[l]!.sinkLogits!) : undefined;
    writeAttendHeadWords(floats, ints, this.layers[l]!.attendRecords, F, this.queries, this.qBytes, heads, this.rowBytes, softmax, sinks, this.attendOut.x);
    this.attendFrames[l] = F;
    this.attendSoftmax[l] = softmax;
  }
}

// One program per model, made at its first decode step (null: the model's
// steps are not the program's).
const programs = new WeakMap<Model, DecodeProgram | null>();
const ids = new WeakMap<Model, number>();
let nextId = 0;

/** The name of the model's program region in the pool's memory (kernels/pool_scratch.ts). */
function regionName(model: Model): string {
  let id = ids.get(model);
  if (id === undefined) ids.set(model, (id = nextId++));
  return `decode program ${id}`;
}

let enabled = true;

/** Turn decode programs off (false: every step the one-job-at-a-time path) or back on; for tests and benchmarks. Returns the previous setting. */
export function setDecodePrograms(on: boolean): boolean {
  const was = enabled;
  enabled = on;
  return was;
}

/**
 * The decode program of a model whose layers and classifier are pooled
 * (residualInPool), on any number of threads; undefined where it has none
 * (no pooled classifier, a sink-token model, a hidden size or headDim the
 * SIMD loops do not take, norms without room in the pool's memory, no
 * direct memory for the embedding's rows, more layers than a program's
 * MAX_PROGRAM_STEPS hold).
 */
export function pooledDecodeProgram(model: Model): DecodeProgram | undefined {
  if (!enabled) return undefined;
  const known = programs.get(model);
  if (known !== undefined) return known ?? undefined;
  // (not yet a model whose layers run in the pool: none now, and asked again later)
  if (!residualInPool(model)) return undefined;
  const program = model.pool !== undefined && hasDirectMemory() ? DecodeProgram.build(model) : undefined;
  programs.set(model, program ?? null);
  return program;
}
