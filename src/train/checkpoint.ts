/**
 * Checkpoints: `<out>/checkpoint/` is a complete model directory (model.json + weights.bin +
 * manifest.json, loadable by the server) plus `trainer.json` (loop position, config, history,
 * optimizer and method JSON state, tensor specs) and `state.bin` (optimizer slots and method
 * tensors: momentum encoder, queue, memory bank, prototypes). A new checkpoint is written to
 * `checkpoint.tmp`, trainer.json last (its presence marks a complete copy); then the old one moves
 * to `checkpoint.old`, the new one into place, and the old one is removed. A crash at any point
 * leaves at least one complete copy, and `recoverCheckpoint` puts the newest back in place.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fsyncDir, writeFileAtomic } from '../model/fs-io';
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
  const { final, tmp, old } = checkpointPaths(outDir);
  recoverCheckpoint(outDir); // the newest complete copy in place, leftovers gone
  await saveModelDir(tmp, network, manifest);
  const { data, specs } = await tf.io.encodeWeights(tensors);
  writeFileAtomic(path.join(tmp, STATE_BIN), new Uint8Array(tf.io.CompositeArrayBuffer.join(data)));
  const stored: StoredState = { format: 'likeness-train-state/1', ...state, tensors: specs };
  writeFileAtomic(path.join(tmp, TRAINER_JSON), JSON.stringify(stored, null, 1) + '\n');
  if (fs.existsSync(final)) fs.renameSync(final, old);
  fs.renameSync(tmp, final);
  fsyncDir(outDir);
  fs.rmSync(old, { recursive: true, force: true });
  return final;
}

const checkpointPaths = (outDir: string) => {
  const final = path.join(outDir, CHECKPOINT_DIR);
  return { final, tmp: `${final}.tmp`, old: `${final}.old` };
};
const isComplete = (dir: string): boolean => fs.existsSync(path.join(dir, TRAINER_JSON));

/**
 * After a crash while a checkpoint was being replaced: puts the newest complete copy at
 * `checkpoint/` (the new one if it was written in full, else the one it was replacing) and removes
 * partial copies. Never removes the only complete copy.
 */
export function recoverCheckpoint(outDir: string): void {
  const { final, tmp, old } = checkpointPaths(outDir);
  if (!isComplete(final)) {
    const newest = [tmp, old].find(isComplete);
    if (newest) {
      fs.rmSync(final, { recursive: true, force: true });
      fs.renameSync(newest, final);
      fsyncDir(outDir);
    }
  }
  for (const leftover of [tmp, old]) fs.rmSync(leftover, { recursive: true, force: true });
}

export function hasCheckpoint(outDir: string): boolean {
  if (!fs.existsSync(outDir)) return false;
  recoverCheckpoint(outDir);
  return isComplete(checkpointPaths(outDir).final);
}

/** Removes the checkpoint of `outDir` and any partial copies (a run started again there with overwrite). */
export function removeCheckpoint(outDir: string): void {
  for (const dir of Object.values(checkpointPaths(outDir))) fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * Loads a checkpoint into `network` (weights by position, including batch-norm statistics) and
 * returns the loop state and the extra tensors (caller disposes them).
 */
export async function loadCheckpoint(outDir: string, network: tf.LayersModel): Promise<{ state: TrainerState; tensors: tf.NamedTensorMap }> {
  if (fs.existsSync(outDir)) recoverCheckpoint(outDir);
  const dir = path.join(outDir, CHECKPOINT_DIR);
  const file = path.join(dir, TRAINER_JSON);
  if (!fs.existsSync(file)) throw new Error(`no checkpoint to resume from: ${file} does not exist`);
  const damaged = (what: string, err: unknown) =>
    new Error(`the checkpoint in ${dir} is damaged (${what}: ${(err as Error).message}); restore it from a backup, or start the run again with --overwrite`);
  let stored: StoredState;
  try {
    stored = JSON.parse(fs.readFileSync(file, 'utf8')) as StoredState;
  } catch (err) {
    throw damaged(TRAINER_JSON, err);
  }
  if (stored.format !== 'likeness-train-state/1') throw new Error(`${file}: unknown format ${String(stored.format)}`);
  let loaded: Awaited<ReturnType<typeof loadModelDir>>;
  try {
    loaded = await loadModelDir(dir);
  } catch (err) {
    throw damaged('its network', err);
  }
  try {
    const weights = loaded.model.getWeights();
    const own = network.getWeights();
    const first = weights.findIndex((w, i) => i >= own.length || w.shape.join() !== own[i].shape.join());
    if (weights.length !== own.length || first >= 0) {
      const at = first >= 0 && first < own.length ? `; weight ${first} is [${weights[first].shape.join(', ')}] there and [${own[first].shape.join(', ')}] here` : '';
      throw new Error(`checkpoint ${dir} holds a different architecture (${weights.length} weights, this run has ${own.length}${at}): pass the encoder options it was trained with`);
    }
    network.setWeights(weights);
  } finally {
    loaded.model.dispose();
  }
  let tensors: tf.NamedTensorMap;
  try {
    const buf = fs.readFileSync(path.join(dir, STATE_BIN));
    tensors = tf.io.decodeWeights(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength), stored.tensors);
  } catch (err) {
    throw damaged(STATE_BIN, err);
  }
  const { format: _f, tensors: _t, ...state } = stored;
  return { state, tensors };
}
