/**
 * The web page in headless Chromium (Debian's `chromium`, driven by playwright-core): a real server
 * over the Fashion-MNIST fixtures and the CC0 photos, real uploads through the file input.
 * Screenshots go to test-output/screenshots/ for a person to look at.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Browser, chromium, FileChooser, Page } from 'playwright-core';
import pino from 'pino';
import { RunningServer, startServer } from '../../src/cli/commands/serve';
import { IngestRunner } from '../../src/ingest/runner';
import { FMNIST_DIR, PHOTOS_DIR, tempDir, testConfig } from '../helpers';

// Functions passed to page.* run in the browser; this project compiles without the DOM lib, so the
// browser globals they use are declared loosely, for this file only.
declare const document: any;
declare const location: any;
type El = any;

const SHOTS = path.join(__dirname, '..', '..', 'test-output', 'screenshots');
const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/lib/chromium/chromium'];

/** Debian's chromium, or CHROMIUM_PATH. Missing is a failure, not a skip: CI installs it (.ci/run). */
function chromiumPath(): string {
  const found = [process.env.CHROMIUM_PATH, ...CANDIDATES].find((p): p is string => !!p && fs.existsSync(p));
  if (!found) {
    throw new Error(`Chromium not found (looked at ${CANDIDATES.join(', ')}). Install Debian's package: apt-get install -y chromium (bash .ci/run does), or set CHROMIUM_PATH.`);
  }
  return found;
}

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  for (const t0 = Date.now(); !condition(); ) {
    if (Date.now() - t0 > timeoutMs) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('web page in Chromium', () => {
  let srv: RunningServer;
  let browser: Browser;
  let page: Page;
  let base: string;
  const shots: string[] = [];
  const choosers: FileChooser[] = [];
  const shoot = async (name: string) => {
    const file = path.join(SHOTS, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    shots.push(file);
  };
  const cardIds = () => page.$$eval('#results .card', (cards) => cards.map((c: El) => c.dataset.id));

  beforeAll(async () => {
    const executablePath = chromiumPath();
    // One catalogue folder: the 100 Fashion-MNIST PNGs (by class) and the photos.
    const catalogue = tempDir('likeness-web-');
    fs.cpSync(FMNIST_DIR, catalogue, { recursive: true });
    fs.cpSync(PHOTOS_DIR, path.join(catalogue, 'photos'), { recursive: true });
    // A small upload limit, so a real photo (astronaut.png, 250 KB) can show the 'too large' message.
    srv = await startServer(testConfig(tempDir(), { importDir: catalogue, maxUploadBytes: 200 * 1024 }));
    base = `http://127.0.0.1:${srv.port}`;
    fs.mkdirSync(SHOTS, { recursive: true });
    browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    // Listening from the start: Chromium reports a file chooser only if interception was on before it opened.
    page.on('filechooser', (chooser) => choosers.push(chooser));
  });

  afterAll(async () => {
    await browser?.close();
    await srv?.stop();
    if (shots.length) console.log(`web page screenshots:\n${shots.join('\n')}`);
  });

  it('uploads a real photo and shows similar items with scores and thumbnails', async () => {
    await page.goto(`${base}/`);
    // Before any query the page offers catalogue items to start from.
    await page.waitForSelector('#samples-grid .card');
    await page.setInputFiles('#file', path.join(PHOTOS_DIR, 'chelsea.jpg'));
    await page.waitForFunction(() => document.querySelectorAll('#results .card').length === 12);
    const ids = await cardIds();
    // The photo itself is in the catalogue: first, at score 1.
    expect(ids[0]).toBe('photos/chelsea.jpg');
    const scores = await page.$$eval('#results .score', (els) => els.map((e: El) => e.textContent ?? ''));
    expect(scores[0]).toBe('1.000');
    for (const s of scores) expect(s).toMatch(/^-?\d\.\d{3}$/);
    expect(scores.map(Number)).toEqual([...scores.map(Number)].sort((a, b) => b - a));
    expect(await page.textContent('#exact')).toContain('photos/chelsea.jpg');
    expect(await page.isVisible('#samples')).toBe(false);
    expect(await page.textContent('#results .card .meta')).toContain('folder');
    // Thumbnails come from the server (decoded, not the placeholder).
    await page.waitForFunction(() => [...document.querySelectorAll('#results img')].every((img: El) => img.complete && img.naturalWidth > 0));
    expect(await page.$$eval('#results img', (imgs) => imgs.filter((i: El) => i.src.includes('/thumbnail')).length)).toBe(12);
    await shoot('1-search-photo');
  });

  it('clicking a result searches by that item', async () => {
    const target = (await cardIds())[2]!;
    await page.click(`#results .card:nth-child(3) a.hit`);
    await page.waitForFunction((id) => document.querySelector('#results .card')?.dataset.id === id, target);
    expect(page.url()).toContain(`#/search?id=${encodeURIComponent(target)}`);
    expect(await page.textContent('#query-label')).toBe(`Items like ${target}`);
    expect(await page.textContent('#results .card .score')).toBe('1.000');
    // The neighbours of the item, as the API gives them.
    const api = (await (await fetch(`${base}/v1/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: target, k: 12 }) })).json()) as { results: { id: string }[] };
    expect(await cardIds()).toEqual(api.results.map((r) => r.id));
    await shoot('2-search-by-item');
  });

  it('k and the metadata filter change the results', async () => {
    await page.fill('#filter-field', 'folder');
    await page.fill('#filter-value', 'bag');
    await page.click('#controls button[type=submit]');
    await page.waitForFunction(() => [...document.querySelectorAll('#results .card')].every((c: El) => c.dataset.id?.startsWith('bag/')));
    expect((await cardIds()).length).toBe(10); // ten bags in the fixtures
    await page.fill('#filter-value', '');
    await page.$eval('#k', (k) => {
      const slider = k as El;
      slider.value = '5';
      slider.dispatchEvent(new Event('input'));
      slider.dispatchEvent(new Event('change'));
    });
    await page.waitForFunction(() => document.querySelectorAll('#results .card').length === 5);
    expect(await page.textContent('#k-out')).toBe('5');
  });

  it('a file that is not an image gets its message', async () => {
    const file = path.join(tempDir(), 'notes.txt');
    fs.writeFileSync(file, 'shopping list: milk, eggs\n');
    await page.setInputFiles('#file', file);
    await page.waitForSelector('#alert:not([hidden])');
    const alert = await page.textContent('#alert');
    expect(alert).toContain('“notes.txt” is not an image');
    expect(alert).toContain('NOT_AN_IMAGE');
    expect(await page.$$('#results .card')).toHaveLength(0);
    await shoot('3-rejected-file');
  });

  it('a file over the upload limit gets its message', async () => {
    await page.setInputFiles('#file', path.join(PHOTOS_DIR, 'astronaut.png'));
    await page.waitForFunction(() => document.querySelector('#alert')?.textContent?.includes('too large'));
    expect(await page.textContent('#alert')).toBe('“astronaut.png” is too large: the server accepts files up to 200 KB.UPLOAD_TOO_LARGE');
  });

  it('says when the server is busy, and retries', async () => {
    let calls = 0;
    await page.route('**/v1/search', (route) => {
      calls++;
      return route.fulfill({ status: 503, headers: { 'retry-after': '1' }, contentType: 'application/json', body: JSON.stringify({ error: { code: 'EMBED_QUEUE_FULL', message: 'busy' } }) });
    });
    await page.setInputFiles('#file', path.join(PHOTOS_DIR, 'coffee.jpg'));
    await page.waitForFunction(() => document.querySelector('#status')?.textContent?.includes('busy'));
    await page.waitForSelector('#alert:not([hidden])', { timeout: 10_000 });
    expect(await page.textContent('#alert')).toContain('The server is busy');
    expect(calls).toBe(3);
    await page.unroute('**/v1/search');
  });

  it('the drop zone opens the file picker from the keyboard (Enter and Space)', async () => {
    for (const key of ['Enter', ' ']) {
      const before = choosers.length;
      await page.focus('#drop');
      await page.keyboard.press(key);
      await until(() => choosers.length > before);
    }
    const chooser = choosers[choosers.length - 1];
    expect(chooser.isMultiple()).toBe(false);
    await chooser.setFiles(path.join(PHOTOS_DIR, 'rocket.jpg'));
    await page.waitForFunction(() => document.querySelector('#results .card')?.dataset.id === 'photos/rocket.jpg');
  });

  it('browses the catalogue page by page and opens an item with its near-duplicates', async () => {
    await page.goto(`${base}/#/browse`);
    await page.waitForFunction(() => document.querySelectorAll('#browse-grid .card').length === 48);
    const firstId = await page.getAttribute('#browse-grid .card', 'data-id');
    await page.click('#browse-next');
    // The old page stays on screen until the next one arrives: wait for different cards.
    await page.waitForFunction(
      (first) => location.hash.includes('cursor=') && document.querySelector('#browse-grid .card')?.dataset.id !== first && document.querySelectorAll('#browse-grid .card').length === 48,
      firstId,
    );
    expect(await page.isVisible('#browse-prev')).toBe(true);
    await shoot('4-catalogue');
    const id = await page.getAttribute('#browse-grid .card', 'data-id');
    await page.click('#browse-grid .card a.hit');
    await page.waitForSelector('#item-meta dt');
    expect(await page.textContent('#item-title')).toBe(id);
    await page.selectOption('#dup-threshold', '0.7');
    await page.waitForFunction(() => document.querySelectorAll('#dup-grid .card').length > 0);
    await shoot('5-item');
  });

  it('shows a placeholder for an item stored before thumbnails were kept', async () => {
    // Written straight to the catalogue, as by a version without thumbnails: same vector as a real item.
    const { store, embedder } = srv.likeness;
    const twin = (await store.getById('bag/test-18.png'))!;
    await store.upsert({ id: 'old/no-thumbnail', metadata: { folder: 'old' }, sha256: '0'.repeat(64), modelId: embedder.modelId, vector: twin.vector });
    await page.goto(`${base}/#/search?id=${encodeURIComponent('old/no-thumbnail')}`);
    // Its result card, and the query preview, fall back to the placeholder.
    await page.waitForSelector('#results .card[data-id="old/no-thumbnail"] img.placeholder', { timeout: 5000 });
    await page.waitForFunction(() => document.querySelector('#query-image')?.src.endsWith('/placeholder.svg'));
    await page.goto(`${base}/#/item/${encodeURIComponent('old/no-thumbnail')}`);
    await page.waitForFunction(() => document.querySelector('#item-image')?.src.endsWith('/placeholder.svg'));
  });

  it('shows ingest jobs and the report section', async () => {
    await page.goto(`${base}/#/jobs`);
    await page.waitForSelector('.job progress');
    expect(await page.textContent('.job')).toContain('104 of 104');
    expect(await page.$('.job .cancel-job')).toBeNull();
    await shoot('6-jobs');
    // A job queued in the store (as another replica's submission would be) can be cancelled from the page.
    const idle = new IngestRunner(srv.likeness.service, srv.likeness.store, { roots: [], chunk: 8, log: pino({ level: 'silent' }) });
    await idle.stop();
    const queued = await idle.submit({ type: 'folder', path: path.join(FMNIST_DIR, 'bag') }, { duplicates: 'keep' }, true);
    await page.goto(`${base}/#/report`);
    await page.goto(`${base}/#/jobs`);
    await page.waitForSelector('.job-queued .cancel-job');
    await shoot('7-job-queued');
    await page.click('.job-queued .cancel-job');
    await page.waitForSelector('.job-cancelled');
    expect(await page.$('.job .cancel-job')).toBeNull();
    expect(await page.textContent('#status')).toContain(`Job ${queued.id} cancelled`);
    expect((await srv.likeness.ingest.view(queued.id))?.status).toBe('cancelled');
    await page.goto(`${base}/#/report`);
    await page.waitForFunction(() => document.querySelector('#report-note')?.textContent?.includes('--report-dir'));
  });
});
