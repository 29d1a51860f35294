/**
 * Checkpoints: `<out>/checkpoint/` is a complete model directory (model.json + weights.bin +
 * manifest.json, loadable by the server) plus `trainer.json` (loop position, config, history,
 * optimizer and method JSON state, tensor specs) and `state.bin` (optimizer slots and method
 * tensors: momentum encoder, queue, memory bank, prototypes). A new checkpoint is written to
 * `checkpoint.tmp` and renamed over the old one, so a crash leaves the previous one intact.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../model/fs-io';
import { ModelManifest } from '../model/manifest';
import { loadModelDir, saveModelDir } from '../model/model-dir';

export const CHECKPOINT_DIR = 'checkpoint';
export const TRAINER_JSON = 'trainer.json';
export const STATE_BIN = 'state.bin';

export interface TrainerState {
  /** Epochs completed. */
  epoch: number;
  /** Optimizer steps completed. */
  step: number;
  elapsedMs: number;
  history: EpochRecord[];
  /** k-NN accuracy before the first step (random weights). */
  initialKnnAccuracy?: number;
  optimizer: { name: string; iterations: number };
  method: Record<string, unknown>;
  /** The run's settings, to refuse resuming with different ones. */
  run: Record<string, unknown>;
  /**
   * Progress into epoch `epoch` (0-based) when the checkpoint was written mid-epoch: batches done,
   * their loss sum and time. A resume skips those batches of the epoch's (seeded) order.
   */
  partial?: { steps: number; lossSum: number; elapsedMs: number };
}

export interface EpochRecord {
  epoch: number;
  loss: number;
  lr: number;
  seconds: number;
  imagesPerSec: number;
  /** k-NN top-1 of the served output. */
  knnAccuracy?: number;
  /** k-NN top-1 of each output of the network (encoder, projection), from one forward pass. */
  knnByOutput?: Record<string, number>;
}

interface StoredState extends TrainerState {
  format: 'likeness-train-state/1';
  tensors: tf.io.WeightsManifestEntry[];
}

export async function saveCheckpoint(outDir: string, network: tf.LayersModel, manifest: ModelManifest, state: TrainerState, tensors: tf.NamedTensorMap): Promise<string> {
  const final = path.join(outDir, CHECKPOINT_DIR);
  const tmp = `${final}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  await saveModelDir(tmp, network, manifest);
  const { data, specs } = await tf.io.encodeWeights(tensors);
  writeFileAtomic(path.join(tmp, STATE_BIN), new Uint8Array(tf.io.CompositeArrayBuffer.join(data)));
  const stored: StoredState = { format: 'likeness-train-state/1', ...state, tensors: specs };
  writeFileAtomic(path.join(tmp, TRAINER_JSON), JSON.stringify(stored, null, 1) + '\n');
  fs.rmSync(final, { recursive: true, force: true });
  fs.renameSync(tmp, final);
  return final;
}

export function hasCheckpoint(outDir: string): boolean {
  return fs.existsSync(path.join(outDir, CHECKPOINT_DIR, TRAINER_JSON));
}

/**
 * Loads a checkpoint into `network` (weights by position, including batch-norm statistics) and
 * returns the loop state and the extra tensors (caller disposes them).
 */
export async function loadCheckpoint(outDir: string, network: tf.LayersModel): Promise<{ state: TrainerState; tensors: tf.NamedTensorMap }> {
  const dir = path.join(outDir, CHECKPOINT_DIR);
  const file = path.join(dir, TRAINER_JSON);
  if (!fs.existsSync(file)) throw new Error(`no checkpoint to resume from: ${file} does not exist`);
  const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as StoredState;
  if (stored.format !== 'likeness-train-state/1') throw new Error(`${file}: unknown format ${String(stored.format)}`);
  const loaded = await loadModelDir(dir);
  try {
    const weights = loaded.model.getWeights();
    const own = network.getWeights();
    if (weights.length !== own.length || weights.some((w, i) => w.shape.join() !== own[i].shape.join())) {
      throw new Error(`checkpoint ${dir} holds a different architecture (${weights.length} weights, this run has ${own.length})`);
    }
    network.setWeights(weights);
  } finally {
    loaded.model.dispose();
  }
  const buf = fs.readFileSync(path.join(dir, STATE_BIN));
  const tensors = tf.io.decodeWeights(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength), stored.tensors);
  const { format: _f, tensors: _t, ...state } = stored;
  return { state, tensors };
}
