/**
 * A filesystem IOHandler for the tfjs layers format (model.json + one weights file).
 *
 * Without tfjs-node, tfjs has no `file://` handler in Node, so `model.save('file://...')` fails; this
 * handler is used on every backend so that model directories are written the same way everywhere.
 * Files are written to a temporary name, fsynced and renamed, so a crash never leaves half a model.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

/** Writes `data` to `file` atomically: temp file, fsync, rename, fsync of the directory. */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      // writeFileSync loops until every byte is written; a single writeSync may write fewer (disk full)
      // and a short file would then be renamed over a good one.
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(path.dirname(file));
}

/** Makes renames and removals inside `dir` durable (a rename is only as safe as its folder's entry). */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function toBytes(weightData: tf.io.WeightData | undefined): Uint8Array {
  if (!weightData) return new Uint8Array(0);
  return new Uint8Array(tf.io.CompositeArrayBuffer.join(weightData));
}

/** IOHandler reading and writing `dir/model.json` and `dir/weights.bin`. */
export function fileSystem(dir: string): tf.io.IOHandler {
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer) throw new Error('binary model topologies are not supported');
      fs.mkdirSync(dir, { recursive: true });
      const weights = toBytes(artifacts.weightData);
      writeFileAtomic(path.join(dir, WEIGHTS_BIN), weights);
      const modelJson = {
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        modelTopology: artifacts.modelTopology,
        trainingConfig: artifacts.trainingConfig,
        weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
      };
      writeFileAtomic(path.join(dir, MODEL_JSON), JSON.stringify(modelJson));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },

    async load(): Promise<tf.io.ModelArtifacts> {
      const jsonPath = path.join(dir, MODEL_JSON);
      let modelJson: tf.io.ModelJSON;
      try {
        modelJson = JSON.parse(fs.readFileSync(jsonPath, 'utf8')) as tf.io.ModelJSON;
      } catch (err) {
        if (err instanceof SyntaxError) throw new Error(`${jsonPath} is not valid JSON (${err.message}): the file is damaged; restore it or save the model again`);
        throw err;
      }
      if (!modelJson.modelTopology || !Array.isArray(modelJson.weightsManifest)) {
        throw new Error(`${jsonPath} is not a tfjs layers model (modelTopology or weightsManifest missing)`);
      }
      const specs: tf.io.WeightsManifestEntry[] = [];
      const buffers: Buffer[] = [];
      for (const group of modelJson.weightsManifest) {
        specs.push(...group.weights);
        for (const p of group.paths) {
          const resolved = path.resolve(dir, p);
          if (path.dirname(resolved) !== path.resolve(dir)) throw new Error(`weights path escapes the model directory: ${p}`);
          buffers.push(fs.readFileSync(resolved));
        }
      }
      const all = Buffer.concat(buffers);
      // tfjs would report a short file as a tensor of the wrong size, and silently ignore a long one.
      const expected = expectedWeightBytes(specs);
      if (expected !== undefined && expected !== all.length) {
        throw new Error(`the weights of ${dir} hold ${all.length} bytes where ${MODEL_JSON} describes ${expected}: the files are damaged or from different models`);
      }
      return {
        modelTopology: modelJson.modelTopology,
        format: modelJson.format,
        generatedBy: modelJson.generatedBy,
        convertedBy: modelJson.convertedBy,
        trainingConfig: modelJson.trainingConfig,
        weightSpecs: specs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
      };
    },
  };
}

/** Bytes the weight specs describe; undefined when one has no fixed size (strings). */
function expectedWeightBytes(specs: tf.io.WeightsManifestEntry[]): number | undefined {
  const size: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };
  let total = 0;
  for (const spec of specs) {
    const per = size[spec.quantization?.dtype ?? spec.dtype];
    if (per === undefined) return undefined;
    total += per * spec.shape.reduce((a, b) => a * b, 1);
  }
  return total;
}
