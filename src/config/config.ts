/**
 * Configuration: every option has a command-line flag and an environment variable, read once at start
 * by commander (flag > environment > default). The parsed `Config` is passed down explicitly; nothing
 * reads process.env later.
 */
import { InvalidArgumentError, Option } from 'commander';
import * as os from 'node:os';
import * as path from 'node:path';
import { TTA_MODES, TtaMode } from '../model/manifest';
import { BACKEND_CHOICES, BackendChoice, CONV_KERNEL_CHOICES, ConvKernelChoice } from '../runtime/backend';
import { bool, intIn, numIn } from './arg-parsers';

/** Root of the installed package (holds models/ and demo/). */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');
// A self-supervised SimCLR model with its features whitened (docs/TRAINING.md, "Whitening"); it (or
// models/fmnist-simclr-mini) is the starting point for training further with --init-from.
export const SHIPPED_MODEL = path.join(PACKAGE_ROOT, 'models', 'fmnist-simclr-mini-whitened');
export const DEMO_CATALOG = path.join(PACKAGE_ROOT, 'demo', 'catalog');

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  /** 'embedded' (SQLite + hnswlib under dataDir) or a postgres:// URL (pgvector; stateless replicas). */
  store: string;
  /** Connections per replica to a PostgreSQL store. */
  pgPoolSize: number;
  model: string;
  /** Test-time augmentation; undefined = as the model's manifest says. */
  tta?: TtaMode;
  backend: BackendChoice;
  /** Who runs the wasm backend's convolutions. */
  convKernels: ConvKernelChoice;
  workers: number;
  maxBatch: number;
  batchWaitMs: number;
  maxQueue: number;
  maxUploadBytes: number;
  maxPixels: number;
  allowSvg: boolean;
  decodeTimeoutSeconds: number;
  hnswM: number;
  hnswEfConstruction: number;
  hnswEfSearch: number;
  snapshotEvery: number;
  importDir?: string;
  /** API keys (JSON lines of name, sha256, scopes); undefined = authentication off. */
  apiKeysFile?: string;
  /** Read routes need no key (anonymous reads are rate-limited per client address). */
  openRead: boolean;
  /** Default requests per second per key (0 = unlimited) and burst; a key may set its own. */
  rateLimit: number;
  rateBurst: number;
  /** Seconds before an unanswered request gets 503 REQUEST_TIMEOUT (0 = no deadline). */
  requestTimeoutSeconds: number;
  /** Seconds a shutdown waits for in-flight requests before cutting them off. */
  shutdownGraceSeconds: number;
  /** Folders that server-side ingest paths must lie in; empty disables POST /v1/ingest. */
  ingestRoots: string[];
  ingestChunk: number;
  /** Seconds a replica holds a claimed ingest chunk before another may take it over (PostgreSQL store). */
  ingestLeaseSeconds: number;
  reportDir?: string;
  duplicates: 'skip' | 'keep' | 'link';
  /** Longest edge of the thumbnail stored with each new item (0 = none). */
  thumbnailSize: number;
  /** Store each new item's original bytes too (served at /v1/items/:id/original). */
  keepOriginals: boolean;
  logLevel: string;
}

/** A day: Node fires a timer set past 2^31 - 1 ms (24.8 days) after 1 ms, so a huge timeout would act at once. */
const MAX_TIMER_SECONDS = 86_400;

function storeUrl(value: string): string {
  if (value === 'embedded' || /^postgres(ql)?:\/\//.test(value)) return value;
  throw new InvalidArgumentError(`expected 'embedded' or a postgres:// URL, got '${value.slice(0, 40)}'`);
}

const opt = (flags: string, description: string, env: string) => new Option(flags, description).env(env);

/** --conv-kernels: shared by the catalogue commands and `likeness train`. */
export function convKernelsOption(): Option {
  return opt(
    '--conv-kernels <name>',
    "wasm backend's convolutions and training batch norm: 'onednn' (native oneDNN: ResNet-18 trains about 4.7x faster; the optional addon likeness-dnnl-conv, built where libdnnl-dev is installed), 'onednn-bf16' (the same, convolution inputs in bfloat16: faster again on CPUs with AVX512-BF16 or AMX, slightly different numbers), 'wasm' (XNNPACK), 'auto' (oneDNN, float32, where built)",
    'LIKENESS_CONV_KERNELS',
  )
    .choices(CONV_KERNEL_CHOICES as string[])
    .default('auto');
}

/** Options shared by every command that opens the catalogue (serve, index, search, info). */
export function catalogOptions(): Option[] {
  return [
    opt('--data-dir <dir>', 'catalogue database and index files', 'LIKENESS_DATA_DIR').default('./data'),
    opt('--store <url>', "where items live: 'embedded' (SQLite + hnswlib in --data-dir) or postgres://user:pass@host/db (pgvector)", 'LIKENESS_STORE')
      .argParser(storeUrl)
      .default('embedded'),
    opt('--pg-pool-size <n>', 'connections per server to a PostgreSQL store', 'LIKENESS_PG_POOL_SIZE').argParser(intIn(1, 1000)).default(10),
    opt('--model <dir>', 'model directory (model.json + weights.bin + manifest.json)', 'LIKENESS_MODEL').default(SHIPPED_MODEL, 'the shipped model'),
    opt('--tta <mode>', "test-time augmentation: 'hflip' also embeds the mirror image and averages (twice the inference), 'none' one pass", 'LIKENESS_TTA')
      .choices(TTA_MODES)
      .default(undefined, "as the model's manifest says"),
    opt('--backend <name>', 'tfjs backend', 'LIKENESS_BACKEND').choices(BACKEND_CHOICES as string[]).default('auto'),
    convKernelsOption(),
    opt('--workers <n>', 'inference worker threads (0 = in the main thread)', 'LIKENESS_WORKERS').argParser(intIn(0, 256)).default(os.availableParallelism(), 'number of cores'),
    opt('--max-batch <n>', 'largest micro-batch per model call', 'LIKENESS_MAX_BATCH').argParser(intIn(1, 4096)).default(64),
    opt('--batch-wait-ms <ms>', 'how long a request waits for a micro-batch to fill', 'LIKENESS_BATCH_WAIT_MS').argParser(intIn(0, 1000)).default(4),
    opt('--max-queue <n>', 'images waiting for embedding before requests get 503', 'LIKENESS_MAX_QUEUE').argParser(intIn(1)).default(1024),
    opt('--max-pixels <n>', 'largest decoded image (width x height)', 'LIKENESS_MAX_PIXELS').argParser(intIn(1)).default(40_000_000),
    opt('--allow-svg [bool]', 'accept SVG uploads (they can reference external resources)', 'LIKENESS_ALLOW_SVG').argParser(bool).default(false),
    opt('--decode-timeout <s>', 'seconds libvips may spend on one image', 'LIKENESS_DECODE_TIMEOUT').argParser(intIn(1, 600)).default(10),
    // The HNSW settings apply to either store: hnswlib's index, or pgvector's (m and ef_construction when it is created).
    opt('--hnsw-m <n>', 'HNSW graph degree', 'LIKENESS_HNSW_M').argParser(intIn(2, 128)).default(16),
    opt('--hnsw-ef-construction <n>', 'HNSW build beam width', 'LIKENESS_HNSW_EF_CONSTRUCTION').argParser(intIn(8, 4096)).default(200),
    opt('--hnsw-ef-search <n>', 'HNSW search beam width', 'LIKENESS_HNSW_EF_SEARCH').argParser(intIn(1, 4096)).default(64),
    opt('--snapshot-every <n>', 'write an index snapshot after this many changes (0 = only at shutdown)', 'LIKENESS_SNAPSHOT_EVERY').argParser(intIn(0)).default(1000),
    opt('--ingest-chunk <n>', 'images per ingest chunk (decode + embed + commit unit)', 'LIKENESS_INGEST_CHUNK').argParser(intIn(1, 100_000)).default(256),
    opt('--ingest-lease <s>', 'seconds a server holds a claimed ingest chunk before another may take it (PostgreSQL store)', 'LIKENESS_INGEST_LEASE')
      .argParser(intIn(1, 86_400))
      .default(120),
    opt('--duplicates <policy>', 'exact duplicates (same bytes, another id) during ingest: skip, keep, or link the id to the existing item', 'LIKENESS_DUPLICATES').choices(['skip', 'keep', 'link']).default('skip'),
    opt('--thumbnail-size <px>', 'longest edge of the thumbnail stored with each new item (0 = none)', 'LIKENESS_THUMBNAIL_SIZE').argParser(intIn(0, 1024)).default(128),
    opt('--keep-originals [bool]', "store each new item's original bytes as well (the catalogue grows by the images' size)", 'LIKENESS_KEEP_ORIGINALS').argParser(bool).default(false),
    opt('--log-level <level>', 'log level', 'LOG_LEVEL').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ];
}

/** Options of `likeness serve` on top of catalogOptions. */
export function serverOptions(): Option[] {
  return [
    opt('--port <n>', 'HTTP port', 'PORT').argParser(intIn(0, 65535)).default(8080),
    opt('--host <addr>', 'address to listen on', 'HOST').default('0.0.0.0'),
    opt('--max-upload-bytes <n>', 'largest upload accepted', 'LIKENESS_MAX_UPLOAD_BYTES').argParser(intIn(1)).default(20 * 1024 * 1024),
    opt('--import <dir>', 'index every image under this folder at start (skips ids already present)', 'LIKENESS_IMPORT'),
    opt('--report-dir <dir>', 'serve an evaluation report (likeness eval --report DIR) at /report/', 'LIKENESS_REPORT_DIR'),
    opt('--ingest-roots <dirs>', 'comma-separated folders that POST /v1/ingest may read (none: server-side ingest off)', 'LIKENESS_INGEST_ROOTS').default(''),
    opt('--api-keys-file <file>', 'API keys (likeness keys create); without it authentication is off', 'LIKENESS_API_KEYS_FILE'),
    opt('--open-read [bool]', 'read routes (search, get, list) need no API key', 'LIKENESS_OPEN_READ').argParser(bool).default(false),
    opt('--rate-limit <n>', 'requests per second per API key (or per address for anonymous reads); 0 = unlimited', 'LIKENESS_RATE_LIMIT').argParser(numIn(0)).default(20),
    opt('--rate-burst <n>', 'requests a key may make at once after an idle spell', 'LIKENESS_RATE_BURST').argParser(intIn(1)).default(40),
    opt('--request-timeout <s>', 'seconds before an unanswered request gets 503 REQUEST_TIMEOUT (0 = none)', 'LIKENESS_REQUEST_TIMEOUT').argParser(numIn(0, MAX_TIMER_SECONDS)).default(30),
    opt('--shutdown-grace <s>', 'seconds a shutdown (SIGTERM) waits for in-flight requests', 'LIKENESS_SHUTDOWN_GRACE').argParser(numIn(0, MAX_TIMER_SECONDS)).default(10),
  ];
}

export const DEFAULTS: Config = {
  port: 8080,
  host: '0.0.0.0',
  dataDir: './data',
  store: 'embedded',
  pgPoolSize: 10,
  model: SHIPPED_MODEL,
  backend: 'auto',
  convKernels: 'auto',
  workers: os.availableParallelism(),
  maxBatch: 64,
  batchWaitMs: 4,
  maxQueue: 1024,
  maxUploadBytes: 20 * 1024 * 1024,
  maxPixels: 40_000_000,
  allowSvg: false,
  decodeTimeoutSeconds: 10,
  hnswM: 16,
  hnswEfConstruction: 200,
  hnswEfSearch: 64,
  snapshotEvery: 1000,
  ingestRoots: [],
  ingestChunk: 256,
  ingestLeaseSeconds: 120,
  openRead: false,
  rateLimit: 20,
  rateBurst: 40,
  requestTimeoutSeconds: 30,
  shutdownGraceSeconds: 10,
  duplicates: 'skip',
  thumbnailSize: 128,
  keepOriginals: false,
  logLevel: 'info',
};

/** Maps commander's parsed options onto Config. */
export function toConfig(opts: Record<string, unknown>): Config {
  const pick = <K extends keyof Config>(key: K, from = key as string): Config[K] => (opts[from] ?? DEFAULTS[key]) as Config[K];
  return {
    port: pick('port'),
    host: pick('host'),
    dataDir: path.resolve(pick('dataDir')),
    store: pick('store'),
    pgPoolSize: pick('pgPoolSize'),
    model: path.resolve(pick('model')),
    tta: opts.tta as TtaMode | undefined,
    backend: pick('backend'),
    convKernels: pick('convKernels'),
    workers: pick('workers'),
    maxBatch: pick('maxBatch'),
    batchWaitMs: pick('batchWaitMs'),
    maxQueue: pick('maxQueue'),
    maxUploadBytes: pick('maxUploadBytes'),
    maxPixels: pick('maxPixels'),
    allowSvg: pick('allowSvg'),
    decodeTimeoutSeconds: pick('decodeTimeoutSeconds', 'decodeTimeout'),
    hnswM: pick('hnswM'),
    hnswEfConstruction: pick('hnswEfConstruction'),
    hnswEfSearch: pick('hnswEfSearch'),
    snapshotEvery: pick('snapshotEvery'),
    importDir: opts.import ? path.resolve(String(opts.import)) : undefined,
    ingestRoots: String(opts.ingestRoots ?? '')
      .split(',')
      .map((r) => r.trim())
      .filter(Boolean)
      .map((r) => path.resolve(r)),
    ingestChunk: pick('ingestChunk'),
    ingestLeaseSeconds: pick('ingestLeaseSeconds', 'ingestLease'),
    apiKeysFile: opts.apiKeysFile ? path.resolve(String(opts.apiKeysFile)) : undefined,
    openRead: pick('openRead'),
    rateLimit: pick('rateLimit'),
    rateBurst: pick('rateBurst'),
    requestTimeoutSeconds: pick('requestTimeoutSeconds', 'requestTimeout'),
    shutdownGraceSeconds: pick('shutdownGraceSeconds', 'shutdownGrace'),
    reportDir: opts.reportDir ? path.resolve(String(opts.reportDir)) : undefined,
    duplicates: pick('duplicates'),
    thumbnailSize: pick('thumbnailSize'),
    keepOriginals: pick('keepOriginals'),
    logLevel: pick('logLevel'),
  };
}
