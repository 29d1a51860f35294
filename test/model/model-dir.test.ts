/**
 * A model directory is a set of three files: a crash between them, or a file copied in from another
 * model, must not load as a model that mixes the two.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModelDir, modelIdOf, saveModelDir } from '../../src/model/model-dir';
import { initBackend } from '../../src/runtime/backend';
import { tempDir, TEST_MODEL } from '../helpers';

describe('saveModelDir / loadModelDir', () => {
  let source: Awaited<ReturnType<typeof loadModelDir>>;

  beforeAll(async () => {
    await initBackend('cpu');
    source = await loadModelDir(TEST_MODEL);
  });
  afterAll(() => source?.model.dispose());

  /** Saves the source network, with its first weight shifted by `shift`, to a new directory. */
  async function saved(shift: number): Promise<string> {
    const dir = path.join(tempDir(), 'model');
    const original = source.model.getWeights().map((w) => w.clone()); // getWeights gives the live variables
    const shifted = original[0].add(shift);
    source.model.setWeights([shifted, ...original.slice(1)]);
    try {
      await saveModelDir(dir, source.model, source.manifest);
    } finally {
      source.model.setWeights(original);
      tf.dispose([shifted, ...original]);
    }
    return dir;
  }

  it('records the sha256 of model.json and weights.bin in the manifest, and loads what it saved', async () => {
    const dir = await saved(0);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    const { createHash } = await import('node:crypto');
    for (const file of ['model.json', 'weights.bin']) {
      expect(manifest.files[file]).toBe(createHash('sha256').update(fs.readFileSync(path.join(dir, file))).digest('hex'));
    }
    const loaded = await loadModelDir(dir);
    expect(loaded.id).toBe(source.id); // same weights, same id
    expect(loaded.id).toBe(modelIdOf(dir));
    loaded.model.dispose();
  });

  it('refuses network files that differ from the ones its manifest was saved with', async () => {
    const [a, b] = [await saved(0), await saved(0.5)];
    const other = await loadModelDir(b);
    expect(other.id).not.toBe(source.id);
    other.model.dispose();
    // A crash after the new weights were written but before the new manifest: b's weights, a's manifest.
    fs.copyFileSync(path.join(b, 'weights.bin'), path.join(a, 'weights.bin'));
    await expect(loadModelDir(a)).rejects.toThrow(/weights\.bin does not match the sha256 in .*manifest\.json: a save was cut short/);
    fs.copyFileSync(path.join(b, 'model.json'), path.join(a, 'model.json'));
    fs.appendFileSync(path.join(a, 'model.json'), ' ');
    await expect(loadModelDir(a)).rejects.toThrow(/model\.json and .*weights\.bin do not match/);
    // Saving again makes it whole.
    await saveModelDir(a, source.model, source.manifest);
    const repaired = await loadModelDir(a);
    expect(repaired.id).toBe(source.id);
    repaired.model.dispose();
  });

  it('loads a manifest written before file hashes were recorded (no check then)', async () => {
    expect(JSON.parse(fs.readFileSync(path.join(TEST_MODEL, 'manifest.json'), 'utf8')).files).toBeUndefined();
    expect(source.id).toMatch(/^random-mini@[0-9a-f]{12}$/);
  });

  it('names damaged network files even without hashes: weights of the wrong size, model.json that is not JSON', async () => {
    const copy = (damage: (dir: string) => void): string => {
      const dir = path.join(tempDir(), 'copy');
      fs.cpSync(TEST_MODEL, dir, { recursive: true });
      damage(dir);
      return dir;
    };
    const weights = path.join(TEST_MODEL, 'weights.bin');
    const size = fs.statSync(weights).size;
    const short = copy((d) => fs.truncateSync(path.join(d, 'weights.bin'), 100));
    await expect(loadModelDir(short)).rejects.toThrow(`the weights of ${short} hold 100 bytes where model.json describes ${size}: the files are damaged or from different models`);
    const long = copy((d) => fs.appendFileSync(path.join(d, 'weights.bin'), fs.readFileSync(weights)));
    await expect(loadModelDir(long)).rejects.toThrow(`hold ${2 * size} bytes where model.json describes ${size}`);
    const notJson = copy((d) => fs.writeFileSync(path.join(d, 'model.json'), 'garbage'));
    await expect(loadModelDir(notJson)).rejects.toThrow(/model\.json is not valid JSON .*: the file is damaged; restore it or save the model again/);
  });
});
