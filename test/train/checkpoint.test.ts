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

  it.each([
    [TRAINER_JSON, (dir: string) => fs.writeFileSync(path.join(dir, TRAINER_JSON), '{"format": '), /damaged \(trainer\.json: .*JSON/],
    ['state.bin', (dir: string) => fs.truncateSync(path.join(dir, 'state.bin'), 8), /damaged \(state\.bin: /],
    ['weights.bin', (dir: string) => fs.truncateSync(path.join(dir, 'weights.bin'), 16), /damaged \(its network: /],
  ] as const)('a damaged %s is named, with what to do', async (_file, damage, message) => {
    const out = layout({ final: copies.second });
    damage(path.join(out, CHECKPOINT_DIR));
    const err = await loadCheckpoint(out, saved.model).catch((e: Error) => e);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).toMatch(/restore it from a backup, or start the run again with --overwrite/);
  });

  it('a checkpoint of another architecture names the first weight that differs', async () => {
    const out = layout({ final: copies.second });
    const other = tf.sequential({ layers: [tf.layers.dense({ units: 3, inputShape: [4] })] });
    const err = await loadCheckpoint(out, other).catch((e: Error) => e);
    other.dispose();
    expect((err as Error).message).toMatch(/holds a different architecture \(\d+ weights, this run has 2; weight 0 is \[.*\] there and \[4, 3\] here\): pass the encoder options it was trained with/);
  });

  it('a folder with no complete copy has no checkpoint', () => {
    const out = layout({ tmp: copies.second }, true);
    expect(hasCheckpoint(out)).toBe(false);
    expect(hasCheckpoint(path.join(out, 'never-written'))).toBe(false);
  });
});
