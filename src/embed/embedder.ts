/**
 * Embedder: image bytes → unit-length float32 vector.
 *
 * Concurrent requests are micro-batched: the first request of a batch waits at most `maxWaitMs` for
 * company, up to `maxBatch` images, then the batch goes to the inference engine as one model call.
 * The queue is bounded: past `maxQueue` waiting images a request fails fast with 503 instead of
 * growing memory and latency without limit.
 */
import { unavailable } from '../errors';
import { decodeToPixels, DecodeLimits } from '../images/decode';
import type { ModelManifest, TtaMode } from '../model/manifest';
import { modelIdOf, readManifest, withTta } from '../model/model-dir';
import type { BackendChoice, ConvKernelChoice } from '../runtime/backend';
import { InferenceEngine, LocalEngine } from './engine';
import { WorkerPoolEngine } from './worker-pool';

export interface BatchingOptions {
  maxBatch: number;
  maxWaitMs: number;
  /** Images waiting for a batch slot before new requests get 503 EMBED_QUEUE_FULL. */
  maxQueue: number;
}

export const DEFAULT_BATCHING: BatchingOptions = { maxBatch: 64, maxWaitMs: 4, maxQueue: 1024 };

export interface EmbedderOptions {
  modelDir: string;
  /** 0 runs inference in this thread; N >= 1 starts N worker threads. */
  workers: number;
  backend: BackendChoice;
  /** The wasm backend's convolutions in the workers (default 'auto'). */
  convKernels?: ConvKernelChoice;
  /** Overrides the manifest's embedding.tta (test-time augmentation); undefined keeps it. */
  tta?: TtaMode;
  batching: BatchingOptions;
  decode: DecodeLimits;
  /** Called after each model call (metrics). */
  onBatch?: (size: number, seconds: number) => void;
}

interface Pending {
  pixels: Uint8Array;
  resolve: (v: Float32Array) => void;
  reject: (e: Error) => void;
}

export class Embedder {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  /** Request images handed to the engine and not yet answered (the engine queues batches it cannot start). */
  private answering = 0;
  /** Uploads being decoded: they hold their bytes and a libvips thread, so they count against maxQueue too. */
  private decoding = 0;

  private constructor(
    readonly modelId: string,
    readonly manifest: ModelManifest,
    private readonly engine: InferenceEngine,
    private readonly opts: EmbedderOptions,
  ) {}

  static async open(opts: EmbedderOptions): Promise<Embedder> {
    const manifest = withTta(readManifest(opts.modelDir), opts.tta);
    const engine =
      opts.workers > 0 ? await WorkerPoolEngine.open(opts.modelDir, opts.workers, opts.backend, opts.tta, opts.convKernels) : await LocalEngine.open(opts.modelDir, opts.tta);
    return new Embedder(modelIdOf(opts.modelDir, manifest), manifest, engine, opts);
  }

  get dim(): number {
    return this.manifest.embedding.dim;
  }

  private get pixelsPerImage(): number {
    const { size, channels } = this.manifest.input;
    return size * size * channels;
  }

  /** Images being decoded, queued or being embedded (for metrics and back-pressure). */
  get load(): number {
    return this.decoding + this.pending.length + this.inFlight;
  }

  /**
   * Request images anywhere between admission and answer. Bulk work (embedMany) is bounded by its
   * callers and not counted, so an ingest job does not turn uploads away.
   */
  private get admitted(): number {
    return this.decoding + this.pending.length + this.answering;
  }

  /** Decodes untrusted bytes (see decodeToPixels for the errors) and embeds them. */
  async embedImage(bytes: Uint8Array): Promise<Float32Array> {
    if (this.admitted >= this.opts.batching.maxQueue) throw unavailable('EMBED_QUEUE_FULL', 'the server is busy embedding; retry shortly');
    this.decoding++;
    let pixels: Buffer;
    try {
      pixels = await decodeToPixels(bytes, this.manifest.input, this.opts.decode);
    } finally {
      this.decoding--;
    }
    return this.embedPixels(pixels);
  }

  decode(bytes: Uint8Array): Promise<Buffer> {
    return decodeToPixels(bytes, this.manifest.input, this.opts.decode);
  }

  /** Embeds one decoded image through the micro-batcher. */
  embedPixels(pixels: Uint8Array): Promise<Float32Array> {
    if (pixels.length !== this.pixelsPerImage) return Promise.reject(new RangeError(`expected ${this.pixelsPerImage} bytes, got ${pixels.length}`));
    if (this.pending.length + this.answering >= this.opts.batching.maxQueue) return Promise.reject(unavailable('EMBED_QUEUE_FULL', 'the server is busy embedding; retry shortly'));
    return new Promise((resolve, reject) => {
      this.pending.push({ pixels, resolve, reject });
      if (this.pending.length >= this.opts.batching.maxBatch) this.flush();
      else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.opts.batching.maxWaitMs);
    });
  }

  /** Embeds many decoded images directly in full batches (bulk ingest, evaluation). */
  async embedMany(images: Uint8Array[]): Promise<Float32Array[]> {
    const { maxBatch } = this.opts.batching;
    const chunks: Promise<Float32Array[]>[] = [];
    for (let i = 0; i < images.length; i += maxBatch) chunks.push(this.runBatch(images.slice(i, i + maxBatch)));
    return (await Promise.all(chunks)).flat();
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.opts.batching.maxBatch);
      this.answering += batch.length;
      this.runBatch(batch.map((p) => p.pixels))
        .then(
          (vectors) => batch.forEach((p, i) => p.resolve(vectors[i])),
          (err: Error) => batch.forEach((p) => p.reject(err)),
        )
        .finally(() => (this.answering -= batch.length));
    }
  }

  private async runBatch(images: Uint8Array[]): Promise<Float32Array[]> {
    const per = this.pixelsPerImage;
    const joined = new Uint8Array(images.length * per);
    images.forEach((img, i) => joined.set(img, i * per));
    const started = process.hrtime.bigint();
    this.inFlight += images.length;
    try {
      const flat = await this.engine.run(joined, images.length);
      this.opts.onBatch?.(images.length, Number(process.hrtime.bigint() - started) / 1e9);
      const dim = this.dim;
      return images.map((_, i) => flat.slice(i * dim, (i + 1) * dim));
    } finally {
      this.inFlight -= images.length;
    }
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    for (const p of this.pending.splice(0)) p.reject(new Error('embedder closed'));
    await this.engine.close();
  }
}
