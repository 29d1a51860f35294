/**
 * Gradient kernels the wasm backend lacks (Conv2DBackpropFilter, depthwise backprops) or runs slowly
 * (Conv2DBackpropInput). Filled in by the wasm training kernels work; registering nothing is safe for
 * inference, which needs none of them.
 */
export function registerWasmTrainingKernels(): void {
  // Intentionally empty until the training kernels land.
}
