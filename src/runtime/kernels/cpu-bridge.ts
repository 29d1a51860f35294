/**
 * A wasm kernel that runs the cpu backend's implementation on copies of its inputs. Slow (two copies
 * per call, the scalar cpu loops) but complete: it is the "stock tfjs" fallback the training kernels
 * are measured against, and a stopgap for any kernel wasm lacks.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

export function cpuBridgeKernel(kernelName: string): tf.KernelConfig {
  return {
    kernelName,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const cpu = tf.engine().findBackend('cpu');
      const cpuKernel = tf.getKernel(kernelName, 'cpu');
      if (!cpu || !cpuKernel) throw new Error(`cpu backend has no kernel '${kernelName}' to bridge`);
      const wasm = backend as BackendWasm;
      const cpuInputs: tf.NamedTensorInfoMap = {};
      for (const [name, info] of Object.entries(inputs)) {
        if (!info) continue;
        const values = wasm.readSync(info.dataId) as tf.backend_util.BackendValues;
        cpuInputs[name] = { dataId: cpu.write(values, info.shape, info.dtype), shape: info.shape, dtype: info.dtype };
      }
      const result = cpuKernel.kernelFunc({ inputs: cpuInputs, backend: cpu, attrs }) as tf.TensorInfo;
      const out = wasm.makeOutput(result.shape, result.dtype);
      wasm.typedArrayFromHeap(out).set(cpu.readSync(result.dataId) as Float32Array);
      for (const info of [...Object.values(cpuInputs), result]) if (info) cpu.disposeData(info.dataId, true);
      return out;
    },
  };
}
