// Backend selection, done once at start-up.
//
//   tensorflow  @tensorflow/tfjs-node-gpu (CUDA), else @tensorflow/tfjs-node;
//               optional peer dependencies, used only when installed
//   wasm        @tensorflow/tfjs-backend-wasm (XNNPACK + SIMD): the default here
//   cpu         plain JavaScript, always present, about 40x slower than wasm
//
// The tensorflow packages are loaded with a dynamic import so that nothing
// depends on them being installed; their install step downloads libtensorflow,
// which this project never requires. tfjs itself is imported when a backend
// starts, so that the CLI's --help and argument errors never load it.
import { createRequire } from 'node:module';
import type { PageAdvice } from '../kernels/huge_pages.js';
import { BackendError } from './errors.js';

export const BACKENDS = ['tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

const require = createRequire(import.meta.url);

/** The most a wasm32 memory can grow to: the bound of what is advised for the wasm backend's heap (its reservation as found, at most this: kernels/huge_pages.ts). */
const WASM32_MAX_BYTES = 2 ** 32;

/** Which of the optional tensorflow packages is importable, GPU first. */
function installedTensorflowPackage(): string | undefined {
  for (const name of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      require.resolve(name);
      return name;
    } catch {
      // not installed: try the next one
    }
  }
  return undefined;
}

/** Switch tfjs to a registered backend; false when it fails to start. */
async function setBackend(name: BackendName): Promise<boolean> {
  const tf = await import('@tensorflow/tfjs');
  return tf.setBackend(name);
}

async function startTensorflow(): Promise<void> {
  const pkg = installedTensorflowPackage();
  if (pkg === undefined) {
    throw new BackendError(
      '--backend tensorflow: neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed ' +
        '(npm install @tensorflow/tfjs-node, or @tensorflow/tfjs-node-gpu for CUDA)',
    );
  }
  await import(pkg); // registers the 'tensorflow' backend on the shared engine
  if (!(await setBackend('tensorflow'))) throw new BackendError(`--backend tensorflow: ${pkg} failed to start`);
}

/** Whether the wasm backend's heap asked for 2 MB pages, or why not; undefined before the wasm backend starts. */
let wasmHeapPages: PageAdvice | undefined;

/** Whether the wasm backend's heap asked for 2 MB pages (kernels/huge_pages.ts), or why not; undefined before initBackend starts wasm. */
export function wasmHeapPageAdvice(): PageAdvice | undefined {
  return wasmHeapPages;
}

async function startWasm(hugePages = true): Promise<void> {
  await import('@tensorflow/tfjs-backend-wasm');
  if (!(await setBackend('wasm'))) throw new BackendError('--backend wasm: @tensorflow/tfjs-backend-wasm failed to start');
  // the heap holds the weights of the one-thread float32 path (and training's tensors): 2 MB pages, as the pool's memory
  const { adviseHugePages, NOT_ASKED } = await import('../kernels/huge_pages.js');
  const { wasmHeapBuffer } = await import('../kernels/paths.js');
  wasmHeapPages = hugePages ? adviseHugePages(wasmHeapBuffer(), WASM32_MAX_BYTES) : NOT_ASKED;
}

async function startCpu(): Promise<void> {
  if (!(await setBackend('cpu'))) throw new BackendError('--backend cpu: the cpu backend failed to start');
}

/**
 * Start the requested backend, or the best one available: tensorflow when
 * installed, else wasm, else cpu. Returns the name of the backend that runs.
 * hugePages: false leaves the wasm backend's heap on the system's default
 * pages (A/B runs; default: ask for 2 MB pages, kernels/huge_pages.ts).
 */
export async function initBackend(requested?: BackendName, options: { hugePages?: boolean } = {}): Promise<BackendName> {
  const startWasmAsked = () => startWasm(options.hugePages !== false);
  if (requested !== undefined) {
    const tf = await import('@tensorflow/tfjs');
    if (tf.getBackend() === requested) return requested;
    await { tensorflow: startTensorflow, wasm: startWasmAsked, cpu: startCpu }[requested]();
    return requested;
  }
  if (installedTensorflowPackage() !== undefined) {
    try {
      await startTensorflow();
      return 'tensorflow';
    } catch {
      // fall through to wasm
    }
  }
  try {
    await startWasmAsked();
    return 'wasm';
  } catch {
    await startCpu();
    return 'cpu';
  }
}
