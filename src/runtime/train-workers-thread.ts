/**
 * Gradient worker: its own wasm backend (with the training kernels) computes the loss gradient of
 * one batch shard for weights the main thread sends; the main thread averages and applies them.
 */
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from './backend';
import type { FromWorker, StepMessage, ToWorker } from './train-workers-protocol';
import { shardLoss } from './train-workers';

let model: tf.LayersModel | undefined;

function reply(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  parentPort?.postMessage(msg, transfer);
}

function step(msg: StepMessage): void {
  if (!model) throw new Error('step before init');
  const m = model;
  m.setWeights(msg.weights.map((w, i) => tf.tensor(w, m.weights[i].shape as number[])));
  const x = tf.tensor(msg.x, msg.xShape);
  const vars = m.trainableWeights.map((w) => w.read() as tf.Variable);
  const { value, grads } = tf.variableGrads(() => shardLoss(m, x), vars);
  const out = vars.map((v) => grads[v.name].dataSync() as Float32Array);
  const nonTrainable = m.nonTrainableWeights.map((w) => w.read().dataSync() as Float32Array);
  const loss = value.dataSync()[0];
  tf.dispose([x, value, ...Object.values(grads)]);
  reply({ kind: 'step', loss, grads: out, nonTrainable }, [...out, ...nonTrainable].map((a) => a.buffer as ArrayBuffer));
}

parentPort?.on('message', (msg: ToWorker) => {
  void (async () => {
    try {
      if (msg.kind === 'init') {
        await initBackend('wasm', { convKernels: msg.convKernels });
        model = await tf.models.modelFromJSON(JSON.parse(msg.modelJson));
        reply({ kind: 'ready' });
      } else if (msg.kind === 'step') {
        step(msg);
      } else {
        model?.dispose();
        parentPort?.close();
      }
    } catch (err) {
      reply({ kind: 'error', message: (err as Error).stack ?? String(err) });
    }
  })();
});
