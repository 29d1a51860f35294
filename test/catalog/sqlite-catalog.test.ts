import * as path from 'node:path';
import { SqliteCatalog } from '../../src/catalog/sqlite-catalog';
import { SqliteJobStore } from '../../src/catalog/sqlite-jobs';
import { tempDir } from '../helpers';

const vec = (...xs: number[]) => new Float32Array(xs);
const item = (id: string, metadata: Record<string, unknown> = {}, modelId = 'm@1') => ({ id, metadata, sha256: `sha-${id}`, modelId, vector: vec(1, 2, 3) });

describe('SqliteCatalog', () => {
  let catalog: SqliteCatalog;
  let file: string;
  beforeEach(() => {
    file = path.join(tempDir(), 'catalog.db');
    catalog = new SqliteCatalog(file);
  });
  afterEach(() => catalog.close());

  it('stores items with vectors and metadata, and survives reopening', () => {
    const { item: a } = catalog.upsert(item('a', { colour: 'red', n: 3 }));
    expect(a.label).toBe(1);
    expect(a.seq).toBe(1);
    catalog.close();
    catalog = new SqliteCatalog(file);
    const back = catalog.getById('a')!;
    expect(back.metadata).toEqual({ colour: 'red', n: 3 });
    expect(Array.from(back.vector)).toEqual([1, 2, 3]);
    expect(back.sha256).toBe('sha-a');
    expect(catalog.pragmaJournal()).toBe('wal');
  });

  it('replacing an id gives a new label and records the old one as removed', () => {
    const first = catalog.upsert(item('a')).item;
    const second = catalog.upsert(item('a', { v: 2 }));
    expect(second.replacedLabel).toBe(first.label);
    expect(second.item.label).toBeGreaterThan(first.label);
    expect(catalog.removedSince(0)).toEqual([first.label]);
    expect(catalog.removedSince(second.item.seq)).toEqual([]);
    catalog.pruneRemovedUpTo(second.item.seq);
    expect(catalog.removedSince(0)).toEqual([]);
    expect(catalog.stats('m@1')).toEqual({ items: 1, itemsForModel: 1, aliases: 0, seq: 2 });
  });

  it('deletes by id and reports unknown ids', () => {
    const { item: a } = catalog.upsert(item('a'));
    expect(catalog.delete('nope')).toBeUndefined();
    expect(catalog.delete('a')).toEqual({ label: a.label, seq: 2, aliases: 0 });
    expect(catalog.getById('a')).toBeUndefined();
    expect(catalog.removedSince(1)).toEqual([a.label]);
  });

  it('links ids to an item without giving them rows the index replays', () => {
    const { item: a } = catalog.upsert(item('a'));
    const { item: b } = catalog.upsert(item('b'));
    expect(catalog.link({ id: 'x', target: 'a', sha256: 'sha-a', metadata: { shop: 2 } })).toBeUndefined();
    // Linking an id that held an item removes that item (its label goes to the index as removed).
    expect(catalog.link({ id: 'b', target: 'a', sha256: 'sha-a', metadata: {} })).toEqual({ label: b.label, seq: 3 });
    expect(catalog.getAlias('x')).toMatchObject({ id: 'x', target: 'a', metadata: { shop: 2 } });
    expect(catalog.aliasesOf(['a', 'zzz'])).toEqual(new Map([['a', ['b', 'x']]]));
    expect(catalog.aliasIdsBySha256('sha-a', 10)).toEqual(['b', 'x']);
    expect(catalog.idsBySha256('sha-a', 10)).toEqual(['a']);
    expect([...catalog.itemsSince(0, 'm@1', 10)].flat().map((i) => i.id)).toEqual(['a']);
    expect(catalog.removedSince(0)).toEqual([b.label]);
    expect(catalog.stats('m@1')).toMatchObject({ items: 1, aliases: 2 });
    // Storing an item under an alias's id ends the alias; deleting the target takes the rest along.
    catalog.upsert(item('x'));
    expect(catalog.getAlias('x')).toBeUndefined();
    expect(catalog.delete('a')).toMatchObject({ label: a.label, aliases: 1 });
    expect(catalog.getAlias('b')).toBeUndefined();
    expect(catalog.deleteAlias('b')).toBe(false);
  });

  it('pages with an opaque cursor and rejects forged ones', () => {
    catalog.upsertMany(Array.from({ length: 25 }, (_, i) => item(`id-${String(i).padStart(2, '0')}`)));
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = catalog.list({ cursor, limit: 10 });
      seen.push(...page.items.map((i) => i.id));
      cursor = page.next;
    } while (cursor);
    expect(seen).toHaveLength(25);
    expect(new Set(seen).size).toBe(25);
    expect(() => catalog.list({ cursor: 'not*base64!', limit: 10 })).toThrow(expect.objectContaining({ code: 'BAD_CURSOR' }));
  });

  it('replays only one model, in chunks, after a sequence number', () => {
    catalog.upsertMany([item('a'), item('b', {}, 'other@2'), item('c'), item('d')]);
    const chunks = [...catalog.itemsSince(1, 'm@1', 1)];
    expect(chunks.map((c) => c.map((i) => i.id))).toEqual([['c'], ['d']]);
  });

  it('matches metadata equality filters with bound values only', () => {
    const { item: a } = catalog.upsert(item('a', { colour: 'red', size: 2, sale: true }));
    expect(catalog.matcher({ colour: 'red' })(a.label)).toBe(true);
    expect(catalog.matcher({ colour: 'red', size: 2, sale: true })(a.label)).toBe(true);
    expect(catalog.matcher({ colour: 'blue' })(a.label)).toBe(false);
    expect(catalog.matcher({ colour: "red' OR 1=1 --" })(a.label)).toBe(false);
    expect(() => catalog.matcher({ "x') OR 1=1 --": 'y' })(a.label)).toThrow(expect.objectContaining({ code: 'BAD_FILTER' }));
  });

  it('keeps the in-memory filter values in step with committed writes, and not with rolled-back ones', () => {
    const db = catalog.database;
    const everLabels = new Set<number>();
    const current = () => [...catalog.itemsSince(0, 'm@1', 1000)].flat();
    // Brute force over what the database holds now: the answer every matcher must give, for every
    // label ever used (a removed one must not match: hnswlib holds it until the index catches up).
    const check = (step: string) => {
      const now = new Map(current().map((it) => [it.label, it.metadata]));
      for (const l of now.keys()) everLabels.add(l);
      for (const f of filters) {
        const m = catalog.matcher(f);
        const want = [...everLabels].filter((l) => now.has(l) && Object.entries(f).every(([k, v]) => Object.hasOwn(now.get(l)!, k) && now.get(l)![k] === v));
        expect({ step, f, got: [...everLabels].filter(m) }).toEqual({ step, f, want: undefined, got: want });
      }
    };
    // Five fields: four are kept in memory, the fifth (w) is read from the database.
    const filters: Array<Record<string, string | number | boolean>> = [
      { colour: 'red' }, { size: 2 }, { sale: true }, { colour: 'blue', sale: false }, { size: '2' }, { sale: 1 }, { shape: 'round' }, { w: 1.5, colour: 'red' }, { w: true },
    ];
    let seed = 7;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 16) % n;
    };
    const colours = ['red', 'blue', 'green'];
    const meta = () => ({
      colour: colours[rand(3)], size: rand(3), shape: rand(2) ? 'round' : 'square', w: [1.5, 2, true][rand(3)],
      ...(rand(2) ? { sale: rand(2) === 0 } : {}), ...(rand(4) === 0 ? { size: [1] } : {}),
    });
    const counts = new Array(7).fill(0);
    for (let i = 0; i < 30; i++) catalog.upsert(item(`i${i}`, meta()));
    check('start'); // builds the values of the first four fields the filters name
    for (let step = 0; step < 300; step++) {
      const id = `i${rand(40)}`;
      const op = rand(7);
      counts[op]++;
      if (op === 0) catalog.upsert(item(id, meta()));
      else if (op === 1) catalog.delete(id);
      else if (op === 2) catalog.updateMetadata(id, () => meta());
      else if (op === 3) catalog.link({ id, target: 'i0', sha256: null, metadata: meta() });
      else if (op === 4) catalog.upsertMany([item(id, meta()), item(`i${rand(40)}`, meta())]);
      else if (op === 5) expect(() => catalog.upsertMany([item(id, meta()), item('bad', meta(), null as unknown as string)])).toThrow(/NOT NULL/);
      else {
        // An outer transaction, as SqliteStore.transaction runs one: writes, a write that fails inside
        // it (its savepoint rolls back), a filtered search meanwhile, then COMMIT or ROLLBACK.
        db.exec('BEGIN IMMEDIATE');
        catalog.upsert(item(id, meta()));
        catalog.updateMetadata(`i${rand(40)}`, () => meta());
        expect(() => catalog.upsertMany([item(`i${rand(40)}`, meta()), item('bad', meta(), null as unknown as string)])).toThrow();
        catalog.delete(`i${rand(40)}`);
        [...everLabels].filter(catalog.matcher({ colour: 'red' }));
        if (rand(2)) {
          db.exec('ROLLBACK');
          catalog.discardPending();
        } else {
          db.exec('COMMIT');
          catalog.settle();
        }
      }
      check(`step ${step} op ${op} ${id}`);
    }
    // Every kind of step ran, many times.
    for (const c of counts) expect(c).toBeGreaterThan(20);
    // Rolled back: an update and a delete of items that stay as they were, then an unrelated write.
    catalog.upsert(item('kept', { colour: 'red', size: 1 }));
    catalog.upsert(item('also-kept', { colour: 'blue', size: 1 }));
    db.exec('BEGIN IMMEDIATE');
    catalog.updateMetadata('kept', () => ({ colour: 'blue', size: 2 }));
    catalog.delete('also-kept');
    db.exec('ROLLBACK');
    catalog.discardPending();
    catalog.upsert(item('unrelated', { colour: 'green' }));
    check('after a rollback and a write');
  });
});

describe('SqliteJobStore', () => {
  const planned = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `img-${i}`, path: `/x/${i}.png`, offset: null, size: null, metadata: { i } }));

  it('writes a big plan in chunks, the job row last; the plan of a job a crash cut short is removed on the next start', async () => {
    const file = path.join(tempDir(), 'catalog.db');
    let catalog = new SqliteCatalog(file);
    let jobs = new SqliteJobStore(catalog.database);
    const job = await jobs.create({ type: 'folder', path: '/x' }, { duplicates: 'keep' }, planned(12_345));
    expect(job).toMatchObject({ status: 'queued', total: 12_345 });
    expect(jobs.pending(job.id, 12_340, 10).map((p) => p.id)).toEqual(['img-12340', 'img-12341', 'img-12342', 'img-12343', 'img-12344']);
    expect(catalog.database.prepare('SELECT COUNT(*) AS n FROM jobs_planning').get()).toEqual({ n: 0 });
    // What a crash between two chunks leaves: the planning marker and plan rows of a job never recorded.
    const count = () => (catalog.database.prepare('SELECT COUNT(*) AS n FROM job_items').get() as { n: number }).n;
    catalog.database.prepare(`INSERT INTO jobs_planning (id) VALUES ('cut-short')`).run();
    catalog.database.prepare(`INSERT INTO job_items (job_id, seq, id, path, metadata) VALUES ('cut-short', 1, 'a', '/a.png', '{}')`).run();
    expect(count()).toBe(12_346);
    catalog.close();
    catalog = new SqliteCatalog(file);
    jobs = new SqliteJobStore(catalog.database);
    expect(count()).toBe(12_345);
    expect(jobs.get(job.id)).toMatchObject({ status: 'queued', total: 12_345 });
    catalog.close();
  });
});
