// The paper's setting for attention maps (Fig. 2: 256 sentences of 16
// tokens), on its own so that the CLI can show it in --help without loading
// the model code.

/** Windows averaged over. */
export const DEFAULT_SAMPLES = 256;
/** Text tokens per window. */
export const DEFAULT_LENGTH = 16;
/** Sink measurement (sink_measure.ts): windows averaged, the "at least 64 held-out windows". */
export const SINK_WINDOWS = 64;
/** The most windows one measurement averages (attention maps' samples, the sink measurement's windows): their offsets are kept and returned. */
export const MAX_WINDOWS = 1_000_000;
