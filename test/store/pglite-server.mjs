// A PostgreSQL server for tests, in its own process (PGlite's wasm loader needs real ES module
// imports, which jest's sandbox lacks): PGlite with the real pgvector extension, served over the
// wire protocol on a loopback port. Driven over IPC by pg-server.ts.
//
// PGlite is one database session. pglite-socket's multiplexer (0.2.x) interleaves connections
// message by message, so one connection's Parse can replace another's unnamed statement between its
// Parse and Bind ("unnamed prepared statement does not exist"). This server multiplexes whole
// requests instead: every message up to a Sync (or a simple Query) runs as one unit, and a connection
// inside a transaction keeps the session until the transaction ends, as PostgreSQL's own isolation
// would require. Still one session: row locks between connections are never contended here.
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import * as net from 'node:net';

const SSL_REQUEST = 80877103;
const CANCEL_REQUEST = 80877102;
const db = await PGlite.create({ extensions: { vector } });

/** The session: one holder at a time; a holder in a transaction keeps it across requests. */
let holder = null;
const waiting = [];
function acquire(conn) {
  if (holder === conn) return Promise.resolve();
  if (holder === null) {
    holder = conn;
    return Promise.resolve();
  }
  return new Promise((resolve) => waiting.push({ conn, resolve }));
}
function release(conn) {
  if (holder !== conn) return;
  const next = waiting.shift();
  holder = next ? next.conn : null;
  next?.resolve();
}

async function run(conn, messages) {
  await acquire(conn);
  try {
    for (const m of messages) {
      const chunks = [];
      await db.execProtocolRawStream(m, { onRawData: (d) => chunks.push(Buffer.from(d)) });
      if (!conn.socket.destroyed) conn.socket.write(Buffer.concat(chunks));
    }
  } finally {
    if (!db.isInTransaction()) release(conn);
  }
}

function serve(socket) {
  const conn = { socket, started: false, buffer: Buffer.alloc(0), pending: [], chain: Promise.resolve(), closed: false };
  socket.setNoDelay(true);
  socket.on('data', (data) => {
    conn.buffer = Buffer.concat([conn.buffer, data]);
    for (;;) {
      const b = conn.buffer;
      if (!conn.started) {
        if (b.length < 8) return;
        const len = b.readInt32BE(0);
        const code = b.readInt32BE(4);
        if (b.length < len) return;
        conn.buffer = b.subarray(len);
        if (code === SSL_REQUEST) socket.write('N');
        else if (code === CANCEL_REQUEST) socket.end();
        else {
          conn.started = true;
          const startup = new Uint8Array(b.subarray(0, len));
          conn.chain = conn.chain.then(() => run(conn, [startup]));
        }
        continue;
      }
      if (b.length < 5) return;
      const len = 1 + b.readInt32BE(1);
      if (b.length < len) return;
      const type = String.fromCharCode(b[0]);
      conn.buffer = b.subarray(len);
      if (type === 'X') {
        socket.end();
        return;
      }
      conn.pending.push(new Uint8Array(b.subarray(0, len)));
      if (type === 'S' || type === 'Q' || type === 'H' || type === 'c' || type === 'f') {
        const batch = conn.pending.splice(0);
        conn.chain = conn.chain.then(() => run(conn, batch)).catch((err) => socket.destroy(err));
      }
    }
  });
  const close = () => {
    if (conn.closed) return;
    conn.closed = true;
    // A connection that dies inside a transaction rolls it back, as a server would.
    conn.chain.finally(async () => {
      if (holder === conn) {
        if (db.isInTransaction()) await db.exec('ROLLBACK').catch(() => undefined);
        release(conn);
      }
      const i = waiting.findIndex((w) => w.conn === conn);
      if (i >= 0) waiting.splice(i, 1);
    });
  };
  socket.on('close', close);
  socket.on('error', close);
}

let port = 0;
let server;
const sockets = new Set();
function listen() {
  return new Promise((resolve) => {
    server = net.createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      serve(s);
    });
    server.listen(port, '127.0.0.1', () => {
      port = server.address().port;
      resolve();
    });
  });
}

await listen();
process.send?.({ type: 'ready', port });
process.on('message', async (msg) => {
  if (msg === 'restart') {
    // Every client connection drops; the data stays (a database restart without data loss).
    await new Promise((r) => {
      server.close(r);
      for (const s of sockets) s.destroy();
    });
    await listen();
    process.send?.({ type: 'restarted', port });
  } else if (msg === 'stop') {
    for (const s of sockets) s.destroy();
    server.close();
    await db.close();
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
