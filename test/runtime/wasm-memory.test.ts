/** Telling a wasm heap that ran out from other wasm failures, so training can say what to change. */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { isWasmOutOfMemory, WASM_MAX_HEAP_BYTES, wasmHeapBytes } from '../../src/runtime/backend';

/** The error a wasm trap throws (the project's type library leaves out WebAssembly's). */
const RuntimeError = (globalThis as unknown as { WebAssembly: { RuntimeError: ErrorConstructor } }).WebAssembly.RuntimeError;

describe('isWasmOutOfMemory', () => {
  const full = WASM_MAX_HEAP_BYTES - 64 * 1024 ** 2;

  it("takes Emscripten's two reports of a failed allocation on a nearly full heap as running out", () => {
    expect(isWasmOutOfMemory(new Error('Aborted(). Build with -sASSERTIONS for more info.'), full)).toBe(true);
    expect(isWasmOutOfMemory(new RuntimeError('memory access out of bounds'), full)).toBe(true);
  });

  it('leaves the same messages alone on a small heap (a real bug, not memory), and other errors on any heap', () => {
    expect(isWasmOutOfMemory(new RuntimeError('memory access out of bounds'), 256 * 1024 ** 2)).toBe(false);
    expect(isWasmOutOfMemory(new Error('loss became NaN'), full)).toBe(false);
    expect(isWasmOutOfMemory(new Error('Aborted()'), undefined)).toBe(false);
  });

  it("reads the wasm backend's heap, which grows with what is allocated", async () => {
    await tf.setBackend('wasm');
    const before = wasmHeapBytes() as number;
    expect(before).toBeGreaterThan(0);
    const big = tf.zeros([64 * 1024 ** 2]); // 256 MiB
    expect(wasmHeapBytes()).toBeGreaterThanOrEqual(256 * 1024 ** 2);
    big.dispose();
  });

  it('reads no heap off the wasm backend', async () => {
    await tf.setBackend('cpu');
    expect(wasmHeapBytes()).toBeUndefined();
    expect(isWasmOutOfMemory(new Error('Aborted()'))).toBe(false);
  });
});
