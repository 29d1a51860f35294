/**
 * A helper thread of the SIMD filter gradient (./simd-filter-grad.ts): one instance of the kernel on
 * the shared memory, woken by the main thread through the control words for each call.
 */
import { workerData } from 'node:worker_threads';
import { ARGS_PER_HELPER, CONTROL_HEADER, READY, type FilterGradExports, type WasmMemory } from './simd-filter-grad';

declare const WebAssembly: { Instance: new (module: object, imports: object) => { exports: unknown } };

const { wasmModule, memory, control, index } = workerData as { wasmModule: object; memory: WasmMemory; control: SharedArrayBuffer; index: number };
const kernel = new WebAssembly.Instance(wasmModule, { env: { memory } }).exports as FilterGradExports;
const ctl = new Int32Array(control);
const args = CONTROL_HEADER + index * ARGS_PER_HELPER;

// Calls begin only once every helper is ready, so none is missed between these two lines.
let seen = Atomics.load(ctl, 0);
Atomics.add(ctl, READY, 1);
for (;;) {
  // sleeps until the main thread bumps the generation for the next call
  Atomics.wait(ctl, 0, seen);
  seen = Atomics.load(ctl, 0);
  try {
    if (ctl[args + 5] > ctl[args + 4]) {
      kernel.filter_grad(ctl[args], ctl[args + 1], ctl[args + 2], ctl[args + 3], ctl[args + 4], ctl[args + 5]);
    }
  } catch {
    Atomics.add(ctl, 2, 1);
  }
  Atomics.add(ctl, 1, 1);
  Atomics.notify(ctl, 1);
}
