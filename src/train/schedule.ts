/**
 * Learning-rate schedule: linear warm-up, then cosine decay (Loshchilov & Hutter 2017, SGDR,
 * arXiv:1608.03983, without restarts), per optimizer step, as in SimCLR and solo-learn:
 *
 *   lr(t) = base · (t + 1) / W                                     for t < W
 *   lr(t) = final + ½ (base − final) (1 + cos(π (t − W) / (T − W)))  otherwise
 */
export interface ScheduleConfig {
  baseLr: number;
  /** Learning rate reached at the last step. Default 0. */
  finalLr: number;
  warmupSteps: number;
  totalSteps: number;
}

export function learningRate(step: number, s: ScheduleConfig): number {
  if (step < s.warmupSteps) return (s.baseLr * (step + 1)) / s.warmupSteps;
  // Steps run from 0 to totalSteps - 1: the last one lands exactly on finalLr.
  const span = Math.max(1, s.totalSteps - s.warmupSteps - 1);
  const progress = Math.min(1, (step - s.warmupSteps) / span);
  return s.finalLr + 0.5 * (s.baseLr - s.finalLr) * (1 + Math.cos(Math.PI * progress));
}
