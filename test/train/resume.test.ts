/**
 * Resume: a MoCo run (momentum encoder, queue, Adam state) stopped after one epoch and resumed ends
 * exactly where an uninterrupted run does; a checkpoint with other settings is refused.
 * Runs in a worker thread (see scenarios.ts).
 */
import type { EpochRecord } from '../../src/train/checkpoint';
import { runScenario } from './helpers';

interface ResumeResult {
  straight: EpochRecord[];
  first: { complete: boolean; history: EpochRecord[] };
  resumed: { complete: boolean; history: EpochRecord[] };
  maxWeightDiff: number;
  mismatch: string[];
}

describe('resume', () => {
  it('a stopped and resumed MoCo run equals an uninterrupted one', async () => {
    const r = await runScenario<ResumeResult>('mocoResume');
    expect(r.first.complete).toBe(false);
    expect(r.first.history[0].loss).toBeCloseTo(r.straight[0].loss, 5);
    expect(r.resumed.complete).toBe(true);
    expect(r.resumed.history.map((e) => e.epoch)).toEqual([1, 2]);
    expect(r.resumed.history[1].loss).toBeCloseTo(r.straight[1].loss, 4);
    expect(r.maxWeightDiff).toBeLessThan(1e-4);
    expect(r.mismatch[0]).toMatch(/different settings \(batchSize\)/);
    expect(r.mismatch[1]).toMatch(/different settings \(warmupEpochs\)/);
    expect(r.mismatch[2]).toMatch(/different settings \(weightDecay\)/);
  });

  it('a run cut inside an epoch resumes from its mid-epoch checkpoint and ends where an uninterrupted one does', async () => {
    const r = await runScenario<ResumeResult & { checkpointState: { epoch: number; step: number; partial?: { steps: number } } }>('mocoResumeMidEpoch');
    expect(r.first.complete).toBe(false);
    // the last checkpoint before the cut: 1 epoch done, 1 batch into epoch 2 (step 4 of 6)
    expect(r.checkpointState).toMatchObject({ epoch: 1, step: 4, partial: { steps: 1 } });
    expect(r.resumed.complete).toBe(true);
    expect(r.resumed.history.map((e) => e.epoch)).toEqual([1, 2]);
    // epoch 2's mean loss combines the batch before the cut and the two after it
    expect(r.resumed.history[1].loss).toBeCloseTo(r.straight[1].loss, 4);
    expect(r.maxWeightDiff).toBeLessThan(1e-4);
  });

  it.each([
    ['in the last step of an epoch', 'mocoAbortInLastStep'],
    ["in the epoch's k-NN monitor", 'mocoAbortInMonitor'],
  ])('a run aborted %s checkpoints the finished batches, and resumes to the uninterrupted weights', async (_where, scenario) => {
    const r = await runScenario<ResumeResult & { checkpointState: object; stopped: object }>(scenario);
    expect(r.first).toEqual({ complete: false, history: [] });
    expect(r.checkpointState).toMatchObject({ epoch: 0, step: 3, partial: { steps: 3 } });
    expect(r.stopped).toMatchObject({ reason: 'SIGTERM', epoch: 0, step: 3, stepsIntoEpoch: 3 });
    expect(r.resumed.complete).toBe(true);
    const summary = (h: EpochRecord[]) => h.map((e) => [e.epoch, e.lr, e.knnByOutput]);
    expect(summary(r.resumed.history)).toEqual(summary(r.straight));
    expect(r.straight[0].knnByOutput).toEqual({ encoder: expect.any(Number), projection: expect.any(Number) });
    expect(r.resumed.history[0].loss).toBeCloseTo(r.straight[0].loss, 5);
    expect(r.resumed.history[1].loss).toBeCloseTo(r.straight[1].loss, 4);
    expect(r.maxWeightDiff).toBeLessThan(1e-4);
  });

  it('--init-from starts a run from a saved model: the whole network for the same head, the encoder for another, served the same way', async () => {
    const r = await runScenario<{ sourceId: string; simclrSame: boolean[]; mocoConvSame: boolean[]; simclrInit: string; simclrEncoder: object; tta: (string | undefined)[]; mocoInitLog: Array<{ from: string; loaded: string }>; mismatch: string }>('initFrom');
    expect(r.simclrEncoder).toMatchObject({ arch: 'resnet-mini', stem: 'small', stages: [1, 2, 1], widths: [4, 8, 16] });
    expect(r.simclrSame.length).toBeGreaterThan(10);
    expect(r.simclrSame.every(Boolean)).toBe(true);
    expect(r.mocoConvSame.length).toBeGreaterThanOrEqual(9); // stem + 4 blocks of 2 convs (+ shortcuts)
    expect(r.mocoConvSame.every(Boolean)).toBe(true);
    expect(r.simclrInit).toBe(r.sourceId);
    // Served as the source is: flip averaging carries over (the source was trained without it).
    expect(r.tta).toEqual([undefined, 'hflip', 'hflip']);
    expect(r.mocoInitLog).toEqual([expect.objectContaining({ from: r.sourceId, loaded: 'encoder' })]);
    expect(r.mismatch).toMatch(/do not fit this encoder/);
  });
});
