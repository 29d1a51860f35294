/** Messages between DataParallelTrainer (main thread) and its gradient workers. */
import type { ConvKernelChoice } from './backend';

export interface InitMessage {
  kind: 'init';
  /** model.toJSON() of the network whose output feeds the loss. */
  modelJson: string;
  /** Who runs the workers' convolutions. */
  convKernels: ConvKernelChoice;
}

export interface StepMessage {
  kind: 'step';
  /** Every weight in model.getWeights() order (trainable and not). */
  weights: Float32Array[];
  /** This worker's shard of the batch and its shape [n, ...]. */
  x: Float32Array;
  xShape: number[];
}

export type ToWorker = InitMessage | StepMessage | { kind: 'close' };

export interface StepResult {
  kind: 'step';
  loss: number;
  /** Gradients of the shard loss, in model.trainableWeights order. */
  grads: Float32Array[];
  /** model.nonTrainableWeights after the forward pass (batch-norm moving statistics). */
  nonTrainable: Float32Array[];
}

export type FromWorker = { kind: 'ready' } | StepResult | { kind: 'error'; message: string };
