/**
 * Replacing a checkpoint survives a crash at any point: every state a crash can leave on disk still
 * resumes from the newest complete copy, and partial copies are cleared.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CHECKPOINT_DIR, hasCheckpoint, loadCheckpoint, saveCheckpoint, TRAINER_JSON, TrainerState } from '../../src/train/checkpoint';
import { loadModelDir } from '../../src/model/model-dir';
import { initBackend } from '../../src/runtime/backend';
import { tempDir, TEST_MODEL } from '../helpers';

const state = (epoch: number): TrainerState => ({ epoch, step: epoch * 10, elapsedMs: 0, history: [], optimizer: { name: 'adam', iterations: epoch * 10 }, method: {}, run: {} });

describe('checkpoint replacement', () => {
  let copies: { first: string; second: string };
  let saved: Awaited<ReturnType<typeof loadModelDir>>;

  beforeAll(async () => {
    await initBackend('cpu');
    saved = await loadModelDir(TEST_MODEL);
    // Two complete checkpoints of one run (epochs 1 and 2), kept aside to lay out crash states.
    const out = tempDir();
    copies = { first: path.join(tempDir(), 'first'), second: path.join(tempDir(), 'second') };
    for (const [epoch, copy] of [[1, copies.first], [2, copies.second]] as const) {
      await saveCheckpoint(out, saved.model, saved.manifest, state(epoch), { bank: tf.ones([2, 3]) });
      fs.cpSync(path.join(out, CHECKPOINT_DIR), copy, { recursive: true });
    }
    expect(fs.readdirSync(out).sort()).toEqual([CHECKPOINT_DIR]); // no leftovers after a clean save
  });
  afterAll(() => saved?.model.dispose());

  /** An output folder holding these copies under checkpoint/, checkpoint.tmp/ and checkpoint.old/. */
  function layout(dirs: Partial<Record<'final' | 'tmp' | 'old', string>>, partialTmp = false): string {
    const out = tempDir();
    const name = { final: CHECKPOINT_DIR, tmp: `${CHECKPOINT_DIR}.tmp`, old: `${CHECKPOINT_DIR}.old` };
    for (const [k, src] of Object.entries(dirs)) fs.cpSync(src, path.join(out, name[k as keyof typeof name]), { recursive: true });
    if (partialTmp) fs.rmSync(path.join(out, name.tmp, TRAINER_JSON)); // cut before its last file
    return out;
  }

  it.each([
    ['the old copy moved aside, the new one not yet in place', 2, { old: 'first', tmp: 'second' }, false],
    ['the new copy cut short while being written', 1, { final: 'first', tmp: 'second' }, true],
    ['the new copy in place, the old one not yet removed', 2, { final: 'second', old: 'first' }, false],
    ['only the old copy complete', 1, { old: 'first', tmp: 'second' }, true],
  ] as const)('%s: resumes from epoch %i', async (_what, epoch, dirs, partialTmp) => {
    const out = layout(Object.fromEntries(Object.entries(dirs).map(([k, v]) => [k, copies[v]])), partialTmp);
    expect(hasCheckpoint(out)).toBe(true);
    const loaded = await loadCheckpoint(out, saved.model);
    expect(loaded.state.epoch).toBe(epoch);
    expect(Array.from(await loaded.tensors.bank.data())).toEqual([1, 1, 1, 1, 1, 1]);
    tf.dispose(loaded.tensors);
    expect(fs.readdirSync(out)).toEqual([CHECKPOINT_DIR]);
  });

  it('a folder with no complete copy has no checkpoint', () => {
    const out = layout({ tmp: copies.second }, true);
    expect(hasCheckpoint(out)).toBe(false);
    expect(hasCheckpoint(path.join(out, 'never-written'))).toBe(false);
  });
});
