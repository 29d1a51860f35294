/**
 * manifest.json: what a model directory is, so the server can refuse one that does not fit.
 * Everything that changes how pixels become a vector lives here; the same fields drive training,
 * serving and evaluation.
 */
import { z } from 'zod';

export const MANIFEST_FORMAT = 'likeness-model/1';
export const MANIFEST_JSON = 'manifest.json';

const resnetSchema = z.object({
  arch: z.string().min(1),
  stem: z.enum(['small', 'imagenet']),
  block: z.enum(['basic', 'bottleneck']),
  stages: z.array(z.number().int().positive()).min(1),
  widths: z.array(z.number().int().positive()).min(1),
  widthMultiplier: z.number().positive(),
});

/** 'whitened' is added after training by `likeness whiten` (whiten.ts). */
const outputName = z.enum(['encoder', 'projection', 'whitened']);

export const TTA_MODES = ['none', 'hflip'] as const;
const ttaMode = z.enum(TTA_MODES);
export type TtaMode = z.infer<typeof ttaMode>;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

export const manifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  /** Human name of the model; the model id adds a hash of the weights (see model-dir.ts). */
  name: z.string().min(1).max(200),
  input: z.object({
    size: z.number().int().min(8).max(1024),
    channels: z.union([z.literal(1), z.literal(3)]),
    /** Per-channel mean and std applied to pixels scaled to [0, 1]. */
    mean: z.array(z.number()).min(1),
    std: z.array(z.number().positive()).min(1),
    /** How a non-square image reaches size x size: 'contain' pads with the background, 'cover' crops, 'fill' stretches. */
    fit: z.enum(['contain', 'cover', 'fill']).default('contain'),
    /** Colour that transparent pixels are flattened onto, and padding for 'contain'. */
    background: z.string().regex(/^#[0-9a-fA-F]{6}$/).default('#000000'),
  }),
  encoder: resnetSchema,
  /** Names of the saved network's outputs, in order (e.g. ['encoder', 'projection']). */
  outputs: z.array(outputName).min(1),
  embedding: z.object({
    output: outputName,
    dim: z.number().int().positive(),
    /**
     * Similarity at or above which two images count as near-duplicates by default. Scores depend on
     * the embedding: whitened vectors spread unrelated images near 0 and score re-encoded copies
     * lower than an unwhitened encoder does, so such a model needs its own (docs/TRAINING.md).
     */
    duplicateThreshold: z.number().gt(0).max(1).optional(),
    /**
     * Test-time augmentation: 'hflip' also embeds each image's mirror image and serves the
     * normalised mean of the two unit vectors (twice the inference; a few tenths of a k-NN point
     * on Fashion-MNIST, docs/TRAINING.md). Absent: one pass. `--tta` overrides it at start.
     */
    tta: ttaMode.optional(),
  }),
  training: z.record(z.string(), z.unknown()).optional(),
  /** How the `whitened` output was fitted (whiten.ts). */
  whitening: z
    .object({
      source: z.enum(['encoder', 'projection', 'grid']),
      grid: z.number().int().positive().optional(),
      sourceDim: z.number().int().positive(),
      dims: z.number().int().positive(),
      power: z.number().min(0).max(1),
      keptVariance: z.number(),
      fittedOn: z.object({ data: z.string(), images: z.number().int() }),
      /** How embedding.duplicateThreshold was chosen (whiten.ts, calibrateDuplicates). */
      duplicateCalibration: z.object({ threshold: z.number(), images: z.number().int(), copyScoreMin: z.number(), copyScoreP01: z.number(), distinctPairsAbove: z.number() }).optional(),
      fromModel: z.string(),
      fittedAt: z.string(),
    })
    .optional(),
  quality: z.record(z.string(), z.unknown()).optional(),
  /**
   * sha256 of the network files saved with this manifest (saveModelDir writes them first and the
   * manifest last). Loading refuses files that differ: a save cut short between files, or files
   * copied in from another model, would otherwise serve new weights under an old description.
   * Absent in manifests written before it existed (no check then).
   */
  files: z.object({ 'model.json': sha256Hex, 'weights.bin': sha256Hex }).optional(),
  createdAt: z.string().optional(),
});

export type ModelManifest = z.infer<typeof manifestSchema>;
export type InputSpec = ModelManifest['input'];

export function parseManifest(raw: unknown, where: string): ModelManifest {
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new Error(`invalid model manifest ${where}: ${issues}`);
  }
  const m = parsed.data;
  for (const key of ['mean', 'std'] as const) {
    if (m.input[key].length !== m.input.channels) {
      throw new Error(`invalid model manifest ${where}: input.${key} has ${m.input[key].length} values for ${m.input.channels} channel(s)`);
    }
  }
  if (!m.outputs.includes(m.embedding.output)) {
    throw new Error(`invalid model manifest ${where}: embedding.output '${m.embedding.output}' is not one of outputs [${m.outputs.join(', ')}]`);
  }
  return m;
}
