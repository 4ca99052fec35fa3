// The reference of simd/loops.wat patchDecodeLayers (kernels/decode_patch.ts):
// the same words written by the records' own setters, a layer, frame and head
// at a time, as src/model/decode_program.ts wrote them in JavaScript before.
import { BLOCK, FRAME, FRAME_WORDS, type PatchHeads, ROW, ROW_WORDS } from './decode_patch.js';
import { setAttendFrameEntries } from './pooled_attention.js';
import { setQkvRopeAngles, setQkvRopeFrame, setQkvRopeSlot } from './qkv_rope.js';

/** Patch the records of the `layers` rows of the table at `table` (byte offsets below 2^31) in `ints`, the pool's memory. */
export function patchDecodeLayersRef(ints: Int32Array, table: number, layers: number, { heads, group, rowBytes }: PatchHeads): void {
  for (let l = 0; l < layers; l++) {
    const row = table / 4 + ROW_WORDS * l;
    const rope = ints[row + ROW.rope]!;
    const keys = ints[row + ROW.keys]!;
    const kvBytes = ints[row + ROW.kvBytes]!;
    const slot = ints[row + ROW.slot]!;
    const block = ints[row + ROW.frames]! / 4;
    const F = ints[block + BLOCK.frames]!;
    setQkvRopeAngles(ints, rope, ints[block + BLOCK.keysCos]!, ints[block + BLOCK.keysSin]!, F);
    setQkvRopeSlot(ints, rope, keys + slot * rowBytes, ints[row + ROW.values]! + slot * rowBytes, kvBytes);
    for (let f = 0; f < F; f++) {
      const frame = block + 3 + FRAME_WORDS * f;
      setQkvRopeFrame(ints, rope, f, ints[frame + FRAME.cos]!, ints[frame + FRAME.sin]!, ints[frame + FRAME.queries]!);
      setAttendFrameEntries(ints, ints[row + ROW.attend]!, F, f, heads, group, keys, kvBytes, rowBytes, ints[frame + FRAME.lo]!, ints[frame + FRAME.hi]!);
    }
  }
}
