// Likeness web page: views chosen by the URL hash, each a few calls to the /v1 API.
// Plain browser JavaScript on purpose: no framework, no bundler, nothing fetched from elsewhere.
// Text from the server is always set through textContent, never parsed as HTML.

const $ = (selector) => document.querySelector(selector);

/** Creates an element: `attrs` are properties (className, href...) or data-/aria- attributes; strings become text. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('data-') || key.startsWith('aria-')) node.setAttribute(key, String(value));
    else node[key] = value;
  }
  for (const child of children.flat()) if (child !== undefined && child !== null) node.append(child);
  return node;
}

// ---------------------------------------------------------------------------------------------
// Talking to the server

class ApiError extends Error {
  constructor(status, code, message, details, retryAfter) {
    super(message);
    Object.assign(this, { status, code, details, retryAfter });
  }
}

/** fetch + JSON; non-2xx answers become ApiError with the server's {error: {code, message}}. */
async function call(path, options = {}) {
  let res;
  try {
    res = await fetch(path, options);
  } catch {
    throw new ApiError(0, 'NETWORK', 'The server cannot be reached. Is it running?');
  }
  if (res.status === 204) return undefined;
  const body = await res.json().catch(() => undefined);
  if (!res.ok) {
    const e = body?.error ?? {};
    const retry = Number(res.headers.get('retry-after')) || undefined;
    throw new ApiError(res.status, e.code ?? `HTTP_${res.status}`, e.message ?? res.statusText, e.details, retry);
  }
  return body;
}

const enc = encodeURIComponent;
const itemUrl = (id) => `/v1/items/${enc(id)}`;
const thumbUrl = (id, sha256) => `${itemUrl(id)}/thumbnail${sha256 ? `?v=${sha256}` : ''}`;
const searchHref = (id) => `#/search?id=${enc(id)}`;
const itemHref = (id) => `#/item/${enc(id)}`;
const size = (bytes) => (bytes < 1024 * 1024 ? `${Math.round(bytes / 1024)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`);

// ---------------------------------------------------------------------------------------------
// Messages: one polite live region for progress, one alert for problems

function say(text) {
  $('#status').textContent = text;
}

function clearAlert() {
  const alert = $('#alert');
  alert.hidden = true;
  alert.replaceChildren();
}

function warn(text, code) {
  const alert = $('#alert');
  alert.replaceChildren(text, code ? el('code', { className: 'code' }, code) : '');
  alert.hidden = false;
  say('');
}

/** What a person should read for an API error; `name` is the file the error is about, if any. */
function explain(err, name) {
  const what = name ? `“${name}”` : 'The image';
  switch (err.code) {
    case 'NOT_AN_IMAGE':
      return `${what} is not an image. Choose a JPEG, PNG, WebP, GIF, AVIF or TIFF file.`;
    case 'UNSUPPORTED_FORMAT':
      return `${what} is in a format this server does not accept (${err.message}).`;
    case 'UPLOAD_TOO_LARGE':
      return `${what} is too large: the server accepts files up to ${err.details?.maxBytes ? size(err.details.maxBytes) : 'its upload limit'}.`;
    case 'IMAGE_TOO_LARGE':
      return `${what} has too many pixels (${err.details?.width ?? '?'} × ${err.details?.height ?? '?'}); the limit is ${err.details?.maxPixels?.toLocaleString() ?? 'the server’s'} pixels.`;
    case 'EMPTY_IMAGE':
      return `${what} is empty (0 bytes).`;
    case 'CORRUPT_IMAGE':
    case 'DECODE_TIMEOUT':
      return `${what} could not be read: it may be truncated or damaged.`;
    case 'EMBED_QUEUE_FULL':
      return 'The server is busy with other images right now.';
    case 'ITEM_NOT_FOUND':
      return 'That item is not in the catalogue (it may have been deleted).';
    case 'UNAUTHENTICATED':
    case 'FORBIDDEN_SCOPE':
      return `This server asks for an API key, which a web page cannot send; start it with --open-read to let the page search and browse. (${err.message})`;
    case 'RATE_LIMITED':
      return 'Too many requests in a short time; wait a moment and try again.';
    default:
      return err.message || 'Something went wrong.';
  }
}

/** Runs `attempt`, retrying a few times when the server says it is busy (503) or rate-limits (429), after its Retry-After. */
async function withRetry(attempt, tries = 3) {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof ApiError) || (err.status !== 503 && err.status !== 429) || i >= tries) throw err;
      const wait = Math.min(err.retryAfter ?? 1, 10);
      say(`The server is busy; trying again in ${wait} s (attempt ${i + 1} of ${tries}).`);
      await new Promise((r) => setTimeout(r, wait * 1000));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Pieces shared by the views

function thumbnail(id, sha256) {
  const src = thumbUrl(id, sha256);
  const img = el('img', { src, alt: '', loading: 'lazy', decoding: 'async', width: 128, height: 128 });
  // One retry a moment later (a rate limit can refuse part of a page of thumbnails), then a neutral
  // placeholder: items stored before thumbnails were kept have none (404).
  let retried = false;
  img.addEventListener('error', () => {
    if (!retried) {
      retried = true;
      setTimeout(() => (img.src = `${src}${src.includes('?') ? '&' : '?'}retry=1`), 1500);
    } else img.replaceWith(el('img', { src: '/placeholder.svg', alt: '', className: 'placeholder', width: 128, height: 128 }));
  });
  // Tiny images (28 px Fashion-MNIST) look better scaled with hard pixel edges.
  img.addEventListener('load', () => img.naturalWidth <= 64 && img.classList.add('pixelated'));
  return img;
}

/** Metadata as a short list; a field that only repeats the id (ingest's `path`) is left out. */
function metadataList(metadata, id) {
  const entries = Object.entries(metadata ?? {}).filter(([, v]) => v !== id);
  if (entries.length === 0) return el('p', { className: 'muted' }, 'no metadata');
  return el('dl', { className: 'meta' }, entries.slice(0, 8).flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, typeof v === 'object' ? JSON.stringify(v) : String(v))]));
}

/** A result card: the picture and id search by that item; "Details" opens its page. */
function hitCard(hit) {
  const score = hit.score?.toFixed(3);
  const label = score === undefined ? `${hit.id}: find items like it` : `${hit.id}, score ${score}: find items like it`;
  return el(
    'li',
    { className: 'card', 'data-id': hit.id },
    el('a', { className: 'hit', href: searchHref(hit.id), 'aria-label': label }, thumbnail(hit.id, hit.sha256), score !== undefined ? el('span', { className: 'score' }, score) : '', el('span', { className: 'id' }, hit.id)),
    metadataList(hit.metadata, hit.id),
    el('a', { className: 'details', href: itemHref(hit.id) }, 'Details'),
  );
}

function itemCard(item) {
  return el(
    'li',
    { className: 'card', 'data-id': item.id },
    el('a', { className: 'hit', href: itemHref(item.id), 'aria-label': `${item.id}: details` }, thumbnail(item.id, item.sha256), el('span', { className: 'id' }, item.id)),
    metadataList(item.metadata, item.id),
    el('a', { className: 'details', href: searchHref(item.id) }, 'Find similar'),
  );
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = raw.split('?');
  return { path, params: new URLSearchParams(query) };
}

// ---------------------------------------------------------------------------------------------
// Search view

const search = {
  /** What is searched for: {file} (an upload) or {id} (a catalogue item). */
  query: undefined,
  previewUrl: undefined,
  /** Bumped per search so a slow answer never overwrites a newer one. */
  generation: 0,

  init() {
    const drop = $('#drop');
    const file = $('#file');
    drop.addEventListener('click', () => file.click());
    drop.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        file.click();
      }
    });
    file.addEventListener('change', () => {
      if (file.files?.[0]) this.useFile(file.files[0]);
      file.value = ''; // choosing the same file again must search again
    });
    drop.addEventListener('dragover', (e) => {
      e.preventDefault();
      drop.classList.add('dragging');
    });
    drop.addEventListener('dragleave', () => drop.classList.remove('dragging'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('dragging');
      const f = e.dataTransfer?.files?.[0];
      if (f) this.useFile(f);
    });
    document.addEventListener('paste', (e) => {
      if ($('#view-search').hidden) return;
      const f = [...(e.clipboardData?.files ?? [])][0];
      if (f) {
        e.preventDefault();
        this.useFile(f);
      }
    });
    const k = $('#k');
    const min = $('#min-score');
    k.addEventListener('input', () => ($('#k-out').value = k.value));
    min.addEventListener('input', () => ($('#min-score-out').value = Number(min.value).toFixed(2)));
    // Sliders search again when let go, not on every step.
    for (const input of [k, min]) input.addEventListener('change', () => this.run());
    $('#controls').addEventListener('submit', (e) => {
      e.preventDefault();
      this.run();
    });
  },

  useFile(file) {
    // The URL names what is searched; an upload has no URL, so it lives at #/ (Back returns to the previous query).
    if (location.hash !== '' && location.hash !== '#/') history.pushState(null, '', '#/');
    this.query = { file };
    this.showPreview(URL.createObjectURL(file), file.name || 'pasted image');
    this.run();
  },

  showPreview(url, label) {
    if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
    this.previewUrl = url.startsWith('blob:') ? url : undefined;
    const img = $('#query-image');
    img.hidden = false;
    img.src = url;
    img.alt = `query: ${label}`;
    img.classList.remove('pixelated');
    img.onload = () => img.naturalWidth <= 64 && img.classList.add('pixelated');
    $('#drop-text').textContent = 'Drop or paste another image, or press Enter to choose one';
  },

  /** Entered from the URL: #/ or #/search?id=... */
  show(params) {
    const id = params.get('id');
    if (id !== null) {
      this.query = { id };
      this.showPreview(thumbUrl(id), id);
      $('#query-image').onerror = () => ($('#query-image').src = '/placeholder.svg');
      this.run();
    } else if (!this.query) {
      say('Choose an image to find similar catalogue items.');
      this.showSamples();
    }
  },

  /** Before the first query: a few catalogue items to start from, so the page is never empty. */
  async showSamples() {
    try {
      const page = await call('/v1/items?limit=12');
      if (this.query || page.items.length === 0) return;
      $('#samples-grid').replaceChildren(...page.items.map((it) => hitCard({ id: it.id, metadata: it.metadata, sha256: it.sha256 })));
      $('#samples').hidden = false;
    } catch {
      // The search itself reports problems; samples are a convenience.
    }
  },

  options() {
    const k = Number($('#k').value);
    const minScore = Number($('#min-score').value);
    const field = $('#filter-field').value.trim();
    const raw = $('#filter-value').value.trim();
    let filter;
    if (field && raw) {
      // Numbers and true/false are compared as such; anything else as text.
      const value = raw === 'true' ? true : raw === 'false' ? false : /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw;
      filter = { [field]: value };
    }
    return { k, ...(minScore > 0 ? { minScore } : {}), ...(filter ? { filter } : {}) };
  },

  async run() {
    const q = this.query;
    if (!q) return;
    $('#samples').hidden = true;
    const generation = ++this.generation;
    const opts = this.options();
    const name = q.file ? q.file.name || 'the pasted image' : q.id;
    clearAlert();
    say(`Searching for items like ${name}…`);
    $('#query-label').textContent = q.file ? `Items like ${name}` : `Items like ${q.id}`;
    $('#results').setAttribute('aria-busy', 'true');
    try {
      const result = await withRetry(() => {
        if (q.id !== undefined) return call('/v1/search', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: q.id, ...opts }) });
        const form = new FormData();
        form.append('k', String(opts.k));
        if (opts.minScore !== undefined) form.append('minScore', String(opts.minScore));
        if (opts.filter) form.append('filter', JSON.stringify(opts.filter));
        form.append('image', q.file, q.file.name || 'pasted.png');
        return call('/v1/search', { method: 'POST', body: form });
      });
      if (generation !== this.generation) return;
      this.render(result, name);
    } catch (err) {
      if (generation !== this.generation) return;
      $('#results').replaceChildren();
      $('#exact').hidden = true;
      $('#query-label').textContent = '';
      warn(explain(err, q.file ? name : undefined), err.code);
    } finally {
      $('#results').removeAttribute('aria-busy');
    }
  },

  render(result, name) {
    const hits = result.results;
    $('#results').replaceChildren(...hits.map(hitCard));
    const exact = result.exactMatches ?? [];
    $('#exact').hidden = exact.length === 0;
    $('#exact').replaceChildren('This exact image is already in the catalogue as ', ...exact.slice(0, 5).flatMap((id, i) => [i ? ', ' : '', el('a', { href: itemHref(id) }, id)]), '.');
    const ms = Math.round(result.timing.totalMs);
    say(hits.length === 0 ? `No items like ${name} pass the current filters.` : `${hits.length} items like ${name}, most similar first (${ms} ms).`);
  },
};

// ---------------------------------------------------------------------------------------------
// Catalogue: pages of items, and one item with its near-duplicates

const PAGE_SIZE = 48;

const browse = {
  /** Cursors of the pages before the one shown, so "Previous" works without a server-side offset. */
  trail: [],
  current: '',

  async show(params) {
    const cursor = params.get('cursor') ?? '';
    if (cursor === '') this.trail = [];
    else if (this.trail.at(-1) === cursor) this.trail.pop(); // went back
    else if (cursor !== this.current) this.trail.push(this.current);
    this.current = cursor;
    say('Loading the catalogue…');
    try {
      const page = await call(`/v1/items?limit=${PAGE_SIZE}${cursor ? `&cursor=${enc(cursor)}` : ''}`);
      $('#browse-grid').replaceChildren(...page.items.map(itemCard));
      const prev = $('#browse-prev');
      prev.hidden = cursor === '';
      prev.href = this.trail.length && this.trail.at(-1) ? `#/browse?cursor=${enc(this.trail.at(-1))}` : '#/browse';
      const next = $('#browse-next');
      next.hidden = !page.next;
      if (page.next) next.href = `#/browse?cursor=${enc(page.next)}`;
      suggestFields(page.items);
      say(page.items.length ? `Showing ${page.items.length} items.` : 'The catalogue is empty.');
    } catch (err) {
      warn(explain(err), err.code);
    }
  },
};

const item = {
  id: undefined,

  init() {
    $('#dup-threshold').addEventListener('change', () => this.id && this.loadDuplicates(this.id));
  },

  async show(id) {
    this.id = id;
    $('#item-title').textContent = id;
    $('#item-search').href = searchHref(id);
    $('#item-meta').replaceChildren();
    $('#dup-grid').replaceChildren();
    try {
      const { item: it } = await call(itemUrl(id));
      const img = $('#item-image');
      img.alt = id;
      img.onerror = () => ((img.onerror = null), (img.src = '/placeholder.svg'));
      img.onload = () => img.classList.toggle('pixelated', img.naturalWidth <= 64);
      img.src = thumbUrl(id, it.sha256);
      const rows = [
        ...Object.entries(it.metadata ?? {}).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)]),
        ['added', new Date(it.createdAt).toLocaleString()],
        ['sha256', it.sha256 ?? '—'],
        ['model', it.model],
        ...(it.aliasOf ? [['same image as', it.aliasOf]] : []),
        ...(it.aliases?.length ? [['also stored as', it.aliases.join(', ')]] : []),
      ];
      $('#item-meta').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
      const original = $('#item-original');
      original.hidden = true;
      fetch(`${itemUrl(id)}/original`, { method: 'HEAD' }).then((r) => {
        if (r.ok && this.id === id) {
          original.href = `${itemUrl(id)}/original`;
          original.hidden = false;
        }
      }, () => undefined);
      await this.loadDuplicates(id);
    } catch (err) {
      warn(explain(err), err.code);
    }
  },

  async loadDuplicates(id) {
    const threshold = $('#dup-threshold').value;
    say(`Looking for near-duplicates of ${id}…`);
    try {
      const dups = await call(`${itemUrl(id)}/duplicates?threshold=${threshold}&k=24`);
      if (this.id !== id) return;
      $('#dup-grid').replaceChildren(...dups.near.map(hitCard));
      const exact = $('#dup-exact');
      exact.hidden = dups.exact.length === 0;
      exact.replaceChildren('Identical bytes: ', ...dups.exact.slice(0, 10).flatMap((other, i) => [i ? ', ' : '', el('a', { href: itemHref(other) }, other)]));
      say(`${dups.near.length} near-duplicates of ${id} at similarity ${threshold} or more.`);
    } catch (err) {
      warn(explain(err), err.code);
    }
  },
};

/** Offers the metadata fields seen so far as filter suggestions. */
function suggestFields(items) {
  const list = $('#filter-fields');
  const known = new Set([...list.options].map((o) => o.value));
  for (const it of items) for (const key of Object.keys(it.metadata ?? {})) if (/^[A-Za-z0-9_-]{1,64}$/.test(key) && !known.has(key)) {
    known.add(key);
    list.append(el('option', { value: key }));
  }
}

// ---------------------------------------------------------------------------------------------
// Ingest jobs, followed while they run

const jobs = {
  timer: undefined,

  async show() {
    clearTimeout(this.timer);
    try {
      const { jobs: list } = await call('/v1/jobs');
      $('#jobs-list').replaceChildren(...(list.length ? list.map(jobCard) : [el('li', { className: 'muted' }, 'No ingest jobs yet.')]));
      const active = list.some((j) => j.status === 'running' || j.status === 'queued');
      say(active ? 'An ingest job is queued or running; this page updates every second.' : `${list.length} ingest jobs.`);
      if (active && !$('#view-jobs').hidden) this.timer = setTimeout(() => !$('#view-jobs').hidden && this.show(), 1000);
    } catch (err) {
      warn(explain(err), err.code);
    }
  },
};

function jobCard(j) {
  const source = j.source?.path ?? JSON.stringify(j.source);
  const facts = [
    `${j.done} of ${j.total}`,
    `${j.added} added`,
    `${j.unchanged} unchanged`,
    `${j.duplicates} duplicates`,
    `${j.failed} failed`,
    ...(j.imagesPerSecond ? [`${j.imagesPerSecond} images/s`] : []),
    ...(j.status === 'running' && j.etaSeconds !== null ? [`about ${j.etaSeconds} s left`] : []),
  ];
  return el(
    'li',
    { className: `job job-${j.status}` },
    el('p', {}, el('strong', {}, j.status), ' ', el('code', {}, source)),
    el('progress', { max: Math.max(j.total, 1), value: j.done, 'aria-label': `job ${j.id}: ${j.done} of ${j.total} done` }),
    el('p', { className: 'muted' }, facts.join(' · ')),
    j.error ? el('p', { className: 'error' }, j.error) : '',
    j.status === 'running' || j.status === 'queued' ? el('button', { type: 'button', className: 'cancel-job', onclick: () => cancelJob(j) }, 'Cancel') : '',
  );
}

/** Stops a job after the chunk it is storing; what it stored stays. Writes need a key where the server has keys. */
async function cancelJob(j) {
  say(`Cancelling job ${j.id}…`);
  try {
    await call(`/v1/jobs/${enc(j.id)}/cancel`, { method: 'POST' });
    await jobs.show();
    say(`Job ${j.id} cancelled; the images it stored stay in the catalogue.`);
  } catch (err) {
    await jobs.show();
    warn(explain(err), err.code);
  }
}

// ---------------------------------------------------------------------------------------------
// The evaluation report (static files the server serves at /report/ when --report-dir is set)

async function showReport() {
  const frame = $('#report-frame');
  const note = $('#report-note');
  const res = await fetch('/report/', { method: 'HEAD' }).catch(() => undefined);
  if (res?.ok) {
    note.replaceChildren('How well the model finds same-class items, measured on held-out data. ', el('a', { href: '/report/', target: '_blank', rel: 'noopener' }, 'Open the report in its own tab'), '.');
    if (!frame.src.endsWith('/report/')) frame.src = '/report/';
    frame.hidden = false;
    say('');
  } else {
    frame.hidden = true;
    note.replaceChildren('This server serves no evaluation report. Write one with ', el('code', {}, 'likeness eval --report DIR'), ' and start the server with ', el('code', {}, '--report-dir DIR'), '.');
  }
}

// ---------------------------------------------------------------------------------------------
// Routing

async function route() {
  clearAlert();
  const { path, params } = parseHash();
  const [view, ...rest] = path.split('/');
  const name = view === '' || view === 'search' ? 'search' : ['browse', 'item', 'jobs', 'report'].includes(view) ? view : 'search';
  for (const section of document.querySelectorAll('main > section')) section.hidden = section.dataset.view !== name;
  for (const link of document.querySelectorAll('nav a[data-view]')) {
    if (link.dataset.view === name || (name === 'item' && link.dataset.view === 'browse')) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (name === 'search') search.show(params);
  else if (name === 'browse') await browse.show(params);
  else if (name === 'item') await item.show(decodeURIComponent(rest.join('/')));
  else if (name === 'jobs') await jobs.show();
  else if (name === 'report') await showReport();
}

async function serverInfo() {
  try {
    const h = await call('/healthz');
    $('#server-info').textContent = `${h.items.toLocaleString()} items · model ${h.model.name} · ${h.backend}`;
    // Similarity scores depend on the model (a whitened one scores copies lower): start from its threshold.
    const select = $('#dup-threshold');
    const t = String(h.model.duplicateThreshold);
    if (![...select.options].some((o) => o.value === t)) select.add(new Option(Number(t).toFixed(2), t));
    select.value = t;
  } catch {
    $('#server-info').textContent = '';
  }
}

search.init();
item.init();
window.addEventListener('hashchange', () => {
  route();
  $('#main').focus({ preventScroll: true });
});
route();
serverInfo();
call('/v1/items?limit=50').then((p) => suggestFields(p.items), () => undefined);
