// A PostgreSQL server for tests, in its own process (PGlite's wasm loader needs real ES module
// imports, which jest's sandbox lacks): PGlite with the real pgvector extension, served over the
// wire protocol by pglite-socket on a loopback port. Driven over IPC by pg-server.ts.
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const MAX_CONNECTIONS = Number(process.env.PGLITE_MAX_CONNECTIONS ?? 64);
const db = await PGlite.create({ extensions: { vector } });
let port = 0;
let server;

async function listen() {
  server = new PGLiteSocketServer({ db, port, host: '127.0.0.1', maxConnections: MAX_CONNECTIONS });
  await server.start();
  port = Number(server.getServerConn().split(':').pop());
}

await listen();
process.send?.({ type: 'ready', port });
process.on('message', async (msg) => {
  if (msg === 'restart') {
    // Every client connection drops; the data stays (a database restart without data loss).
    await server.stop();
    await listen();
    process.send?.({ type: 'restarted', port });
  } else if (msg === 'stop') {
    await server.stop();
    await db.close();
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
