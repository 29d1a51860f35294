/**
 * A model directory: model.json + weights.bin (tfjs layers format) + manifest.json.
 * Loading checks that the manifest agrees with the network (input shape, outputs, embedding size)
 * and refuses the directory otherwise.
 */
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
// Registers the project's BatchNormalization as the class saved models' batch-norm layers load as.
import './batch-norm';
// Registers the unit-length layer whitened models use (whiten.ts).
import './l2-normalize';
import { fileSystem, MODEL_JSON, WEIGHTS_BIN, writeFileAtomic } from './fs-io';
import { MANIFEST_JSON, ModelManifest, parseManifest, TtaMode } from './manifest';

export interface LoadedModel {
  /**
   * `name@<first 12 hex of sha256(weights)>`, plus `:<output>` when the served output is not the
   * network's first and `+hflip` with test-time augmentation: stored with every vector so models (or
   * outputs of one network) are never mixed.
   */
  id: string;
  dir: string;
  manifest: ModelManifest;
  model: tf.LayersModel;
  /** Index into model.outputs of the served embedding. */
  embeddingOutput: number;
}

export function readManifest(dir: string): ModelManifest {
  const file = path.join(dir, MANIFEST_JSON);
  if (!fs.existsSync(file)) throw new Error(`model directory ${dir} has no ${MANIFEST_JSON}`);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  return parseManifest(raw, file);
}

const sha256Of = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** The sha256 of the network files in `dir`, as `manifest.files` records them. */
function networkFileHashes(dir: string): NonNullable<ModelManifest['files']> {
  return { [MODEL_JSON]: sha256Of(path.join(dir, MODEL_JSON)), [WEIGHTS_BIN]: sha256Of(path.join(dir, WEIGHTS_BIN)) };
}

/**
 * Checks the network files against the hashes in the manifest (when it has them) and returns the
 * weights' sha256.
 */
function verifyNetworkFiles(dir: string, manifest: ModelManifest): string {
  const actual = networkFileHashes(dir);
  const recorded = manifest.files;
  const differ = recorded ? ([MODEL_JSON, WEIGHTS_BIN] as const).filter((f) => recorded[f] !== actual[f]) : [];
  if (differ.length > 0) {
    throw new Error(
      `${differ.map((f) => path.join(dir, f)).join(' and ')} ${differ.length > 1 ? 'do' : 'does'} not match the sha256 in ${path.join(dir, MANIFEST_JSON)}: ` +
        'a save was cut short or the files were replaced; save the model again, or restore its files',
    );
  }
  return actual[WEIGHTS_BIN];
}

/** The model id of a directory without loading the network (hashes the weights file). */
export function modelIdOf(dir: string, manifest = readManifest(dir)): string {
  return idFor(manifest, sha256Of(path.join(dir, WEIGHTS_BIN)));
}

function idFor(manifest: ModelManifest, digest: string): string {
  // The same weights serving their projection instead of their encoder give other vectors (maybe of
  // the same size): a catalogue must not take them for the ones it holds.
  const output = manifest.embedding.output === manifest.outputs[0] ? '' : `:${manifest.embedding.output}`;
  // Mirror-averaged vectors differ from single-pass ones too.
  const tta = manifest.embedding.tta === 'hflip' ? '+hflip' : '';
  return `${manifest.name}@${digest.slice(0, 12)}${output}${tta}`;
}

/** The manifest as served with a `--tta` override (undefined keeps the manifest's own setting). */
export function withTta(manifest: ModelManifest, tta: TtaMode | undefined): ModelManifest {
  if (tta === undefined) return manifest;
  const { tta: _old, ...embedding } = manifest.embedding;
  return { ...manifest, embedding: tta === 'none' ? embedding : { ...embedding, tta } };
}

/**
 * A temporary model directory that serves another output of the network in `dir` (links to its
 * files, with its own manifest): e.g. to measure the projection of a model that serves its encoder.
 * The caller removes it.
 */
export async function outputTwin(dir: string, output: string): Promise<string> {
  const manifest = readManifest(dir);
  const index = (manifest.outputs as string[]).indexOf(output);
  if (index < 0) throw new RangeError(`${dir} has no output '${output}'; its outputs are ${manifest.outputs.join(', ')}`);
  const model = await tf.loadLayersModel(fileSystem(dir));
  const dim = outputDims(model)[index];
  model.dispose();
  const twin = fs.mkdtempSync(path.join(os.tmpdir(), 'likeness-output-'));
  try {
    for (const file of [MODEL_JSON, WEIGHTS_BIN]) fs.symlinkSync(path.resolve(dir, file), path.join(twin, file));
    writeFileAtomic(path.join(twin, MANIFEST_JSON), JSON.stringify({ ...manifest, embedding: { output, dim, tta: manifest.embedding.tta } }, null, 2) + '\n');
    return twin;
  } catch (err) {
    fs.rmSync(twin, { recursive: true, force: true });
    throw err;
  }
}

function outputDims(model: tf.LayersModel): number[] {
  return model.outputs.map((o) => o.shape[o.shape.length - 1] as number);
}

export async function loadModelDir(dir: string, tta?: TtaMode): Promise<LoadedModel> {
  const manifest = withTta(readManifest(dir), tta);
  const digest = verifyNetworkFiles(dir, manifest);
  const model = await tf.loadLayersModel(fileSystem(dir));
  const where = path.join(dir, MANIFEST_JSON);
  const [, h, w, c] = model.inputs[0].shape;
  const { size, channels } = manifest.input;
  if (h !== size || w !== size || c !== channels) {
    model.dispose();
    throw new Error(`${where} says input ${size}x${size}x${channels} but the network takes ${h}x${w}x${c}`);
  }
  if (model.outputs.length !== manifest.outputs.length) {
    model.dispose();
    throw new Error(`${where} lists ${manifest.outputs.length} outputs but the network has ${model.outputs.length}`);
  }
  const embeddingOutput = manifest.outputs.indexOf(manifest.embedding.output);
  const dim = outputDims(model)[embeddingOutput];
  if (dim !== manifest.embedding.dim) {
    model.dispose();
    throw new Error(`${where} says embedding.dim ${manifest.embedding.dim} but output '${manifest.embedding.output}' has ${dim}`);
  }
  return { id: idFor(manifest, digest), dir, manifest, model, embeddingOutput };
}

/**
 * Saves a network and its manifest as a model directory: weights, topology, then the manifest with
 * their hashes. Each file is replaced atomically; the hashes make the three a set, so a crash between
 * files leaves a directory that loading refuses rather than one that mixes two models.
 */
export async function saveModelDir(dir: string, model: tf.LayersModel, manifest: ModelManifest): Promise<string> {
  parseManifest(manifest, `for ${dir}`);
  fs.mkdirSync(dir, { recursive: true });
  await model.save(fileSystem(dir));
  const files = networkFileHashes(dir);
  const saved = { ...manifest, files };
  writeFileAtomic(path.join(dir, MANIFEST_JSON), JSON.stringify(saved, null, 2) + '\n');
  return idFor(saved, files[WEIGHTS_BIN]);
}
