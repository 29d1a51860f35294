/**
 * Writes test/fixtures/models/random-mini: the shipped encoder architecture (resnet-mini, 28 px grey)
 * with fixed random weights, in the model directory format. Tests use it so they do not depend on a
 * trained model; the server code cannot tell the difference. Usage: npx tsx scripts/make-random-model.ts
 */
import * as tf from '@tensorflow/tfjs';
import { saveModelDir } from '../src/model/model-dir';
import { buildResNet, RESNET_PRESETS, resnetFeatureDim } from '../src/model/resnet';
import { initBackend } from '../src/runtime/backend';

async function main(): Promise<void> {
  await initBackend('cpu');
  tf.util.seedrandom?.('likeness');
  const arch = 'resnet-mini';
  const cfg = { ...RESNET_PRESETS[arch], inputSize: 28, channels: 1 };
  const model = buildResNet(cfg);
  const id = await saveModelDir('test/fixtures/models/random-mini', model, {
    format: 'likeness-model/1',
    name: 'random-mini',
    input: { size: 28, channels: 1, mean: [0.286], std: [0.353], fit: 'contain', background: '#000000' },
    encoder: { arch, ...RESNET_PRESETS[arch] },
    outputs: ['encoder'],
    embedding: { output: 'encoder', dim: resnetFeatureDim(cfg) },
    training: { method: 'none', note: 'random initialisation (He normal); for tests only' },
    createdAt: new Date().toISOString(),
  });
  console.log(id);
}

void main();
