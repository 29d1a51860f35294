/** Worker thread body for WorkerPoolEngine: one backend and one copy of the model per thread. */
import { parentPort, workerData } from 'node:worker_threads';
import type { TtaMode } from '../model/manifest';
import { BackendChoice, ConvKernelChoice, initBackend } from '../runtime/backend';
import { LocalEngine } from './engine';

export interface WorkerInit {
  modelDir: string;
  backend: BackendChoice;
  convKernels: ConvKernelChoice;
  tta?: TtaMode;
}
export type WorkerRequest = { id: number; pixels: Uint8Array; count: number };
export type WorkerResponse = { id: number; vectors?: Float32Array; error?: string } | { ready: true; backend: string } | { fatal: string };

async function main(): Promise<void> {
  const port = parentPort!;
  const init = workerData as WorkerInit;
  let engine: LocalEngine;
  try {
    const info = await initBackend(init.backend, { convKernels: init.convKernels });
    engine = await LocalEngine.open(init.modelDir, init.tta);
    port.postMessage({ ready: true, backend: info.name } satisfies WorkerResponse);
  } catch (err) {
    port.postMessage({ fatal: (err as Error).message } satisfies WorkerResponse);
    return;
  }
  port.on('message', async (req: WorkerRequest) => {
    try {
      const vectors = await engine.run(req.pixels, req.count);
      port.postMessage({ id: req.id, vectors } satisfies WorkerResponse, [vectors.buffer as ArrayBuffer]);
    } catch (err) {
      port.postMessage({ id: req.id, error: (err as Error).message } satisfies WorkerResponse);
    }
  });
}

void main();
