#!/usr/bin/env node
'use strict';
// socket.io 4.8.4 + @socket.io/redis-streams-adapter, with socket.io-client 4.8.4 and redis 4.7.1.
//   node peer.js --modules DIR --name A --port 3001 --redis-port 6390 [--redis-host H]
//                [--streams-version 0.3|0.2]  (0.3.1, or 0.2.3 installed under an npm alias)
//                [--stream socket.io] [--key socket.io] (0.3 channelPrefix) [--nsps /,/chat]
//                [--max-len 10000] [--read-count 100] [--block-time MS] [--stream-count N] (0.3)
//                [--heartbeat-interval MS] [--heartbeat-timeout MS] (0.2)
//                [--session-key-prefix sio:session:] [--recovery MS] (connectionStateRecovery)
//                [--only-plaintext true] (0.3) [--sse-events sse,sse-ack] [--sse-mode reply|silent]
// Without --port: a client-only process. There is no emitter: @socket.io/redis-streams-emitter
// is not published on npm.

const http = require('http');
const { parseArgs, requireFrom, toWire, fromWire, event, failure, main } = require('../js/rpc');

const args = parseArgs(process.argv);
const req = requireFrom(args.modules);
const NAME = args.name || 'peer';
const REDIS_URL = `redis://${args['redis-host'] || '127.0.0.1'}:${args['redis-port'] || '6379'}`;
const VERSION = args['streams-version'] || '0.3';
const PACKAGE = { '0.3': '@socket.io/redis-streams-adapter', '0.2': 'redis-streams-adapter-0.2' }[VERSION];
const STREAM = args.stream || 'socket.io';
const KEY = args.key || 'socket.io';
const NSPS = (args.nsps || '/').split(',').filter(Boolean);
const SSE_EVENTS = (args['sse-events'] || 'sse,sse-ack').split(',').filter(Boolean);
// Every connection of this peer carries this name, so readiness can be read from CLIENT LIST.
const CLIENT_NAME = `siopeer-${NAME}-${process.pid}`.replace(/[^A-Za-z0-9_.-]/g, '_');
let sseMode = args['sse-mode'] || 'reply';

let io = null;
let pub = null;
let listenPort = null;
const clients = {};
const bench = require('../js/bench').benchClients(clients);

const intArg = (name) => (args[name] !== undefined ? parseInt(args[name], 10) : undefined);

// A connected node-redis client; the first connection error rejects (no endless retry).
async function redisClient() {
  const c = req('redis').createClient({ url: REDIS_URL, name: CLIENT_NAME });
  const failed = new Promise((resolve, reject) => c.once('error', reject));
  c.on('error', (e) => event('redis_error', { error: String(e) }));
  await Promise.race([c.connect(), failed]);
  return c;
}

// The adapter reads the stream from "$" (entries added before its first XREAD are never
// seen) and, in 0.3, subscribes to its pub/sub channels on a duplicate: wait until this
// peer's connections are blocked in XREAD and (0.3) subscribed, as CLIENT LIST shows.
async function waitReady(timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const mine = (await pub.sendCommand(['CLIENT', 'LIST']))
      .split('\n')
      .filter((line) => line.includes(` name=${CLIENT_NAME} `));
    // one reading connection per stream (0.3 streamCount: streamName-0 .. -<N-1>)
    const blocked = mine.filter((line) => / cmd=xread /.test(line) && / flags=\S*b/.test(line));
    const reading = blocked.length >= (intArg('stream-count') || 1);
    // 0.3: SUBSCRIBE to the public and the private channel of every namespace
    const subscribed = VERSION === '0.2' || mine.some((line) => parseInt((/ sub=(\d+)/.exec(line) || [0, 0])[1], 10) >= 2 * NSPS.length);
    if (reading && subscribed) return;
    if (Date.now() > deadline) throw new Error('the adapter did not start reading the stream');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function nsp(name) {
  if (!io) throw new Error('no server in this peer (started without --port)');
  return io.of(name || '/');
}

function localSocket(m) {
  const socket = nsp(m.nsp).sockets.get(m.sid);
  if (!socket) throw new Error('no local socket ' + m.sid);
  return socket;
}

function setupNamespace(n) {
  n.on('connection', (socket) => {
    const client = (socket.handshake.auth && socket.handshake.auth.name) || null;
    if (!socket.recovered) socket.data = { name: client, node: NAME };
    event('connection', { nsp: n.name, sid: socket.id, client, recovered: !!socket.recovered });
    socket.on('join', (rooms, ack) => {
      socket.join(rooms);
      if (ack) ack([...socket.rooms]);
    });
    socket.on('leave', (room, ack) => {
      socket.leave(room);
      if (ack) ack([...socket.rooms]);
    });
    socket.on('disconnect', (reason) => event('disconnect', { nsp: n.name, sid: socket.id, reason }));
  });
  for (const ev of SSE_EVENTS) {
    n.on(ev, (...a) => {
      const cb = typeof a[a.length - 1] === 'function' ? a.pop() : null;
      event('server_side_emit', { nsp: n.name, event: ev, args: toWire(a), with_ack: !!cb, mode: sseMode });
      if (cb && sseMode === 'reply') cb({ node: NAME, event: ev, args: a });
    });
  }
}

async function startServer() {
  if (!PACKAGE) throw new Error(`unknown --streams-version ${VERSION}; choose 0.3 or 0.2`);
  pub = await redisClient();
  const options = {
    streamName: STREAM,
    channelPrefix: KEY,
    maxLen: intArg('max-len'),
    streamCount: intArg('stream-count'),
    readCount: intArg('read-count'),
    blockTimeInMs: intArg('block-time'),
    sessionKeyPrefix: args['session-key-prefix'],
    heartbeatInterval: intArg('heartbeat-interval'),
    heartbeatTimeout: intArg('heartbeat-timeout'),
    onlyPlaintext: args['only-plaintext'] === 'true' ? true : undefined,
  };
  for (const k of Object.keys(options)) if (options[k] === undefined) delete options[k];
  const adapter = req(PACKAGE).createAdapter(pub, options);
  const server = http.createServer();
  const recovery = intArg('recovery');
  io = new (req('socket.io').Server)(server, {
    adapter,
    transports: ['websocket', 'polling'],
    ...(recovery ? { connectionStateRecovery: { maxDisconnectionDuration: recovery, skipMiddlewares: true } } : {}),
  });
  const timeout = intArg('requests-timeout');
  for (const name of NSPS) {
    const n = io.of(name);
    if (timeout) n.adapter.requestsTimeout = timeout; // ClusterAdapter's own default is 5000 ms
    setupNamespace(n);
  }
  await waitReady(10000);
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(parseInt(args.port, 10), '127.0.0.1', resolve);
  });
  listenPort = server.address().port;
}

function state() {
  const out = {};
  for (const [name, n] of io._nsps) {
    const sids = Object.fromEntries([...n.adapter.sids].map(([sid, rooms]) => [sid, [...rooms]]));
    out[name] = { uid: n.adapter.uid, sockets: [...n.sockets.keys()], sids, rooms: [...n.adapter.rooms.keys()] };
  }
  return out;
}

function uids() {
  return io ? Object.fromEntries([...io._nsps].map(([k, n]) => [k, n.adapter.uid])) : {};
}

// {rooms[], except[], flags{volatile, compress, local, timeout}} applied to a BroadcastOperator
function target(op, m) {
  const flags = m.flags || {};
  if (m.rooms && m.rooms.length) op = op.to(m.rooms);
  if (m.except && m.except.length) op = op.except(m.except);
  if (flags.volatile) op = op.volatile;
  if (flags.local) op = op.local;
  if ('compress' in flags) op = op.compress(flags.compress);
  if ('timeout' in flags) op = op.timeout(flags.timeout);
  return op;
}

function emitWithAck(op, m) {
  const a = fromWire(m.args || []);
  if (!m.ack) {
    op.emit(m.event, ...a);
    return true;
  }
  return new Promise((resolve, reject) => {
    op.emit(m.event, ...a, (err, responses) => (err ? reject(failure(err.message, responses)) : resolve(responses)));
  });
}

function sockets(list) {
  return list.map((s) => ({ id: s.id, rooms: [...s.rooms], data: s.data, remote: !s.conn }));
}

const info = () => ({
  name: NAME,
  flavor: 'streams',
  streams_version: VERSION,
  stream: STREAM,
  stream_count: intArg('stream-count') || 1,
  key: KEY,
  client_name: CLIENT_NAME,
  port: listenPort,
  uid: io ? nsp('/').adapter.uid : null,
  uids: uids(),
  nsps: io ? state() : {},
});

const handlers = {
  ping: async () => 'pong',
  settle: async () => (io ? waitReady(5000).then(() => true) : true),
  info: async () => ({ ...info(), clients: Object.fromEntries(Object.entries(clients).map(([k, s]) => [k, { id: s.id, nsp: s.nsp, connected: s.connected }])) }),
  set_sse_mode: async (m) => (sseMode = m.mode),

  // broadcasts (with ack: the reply is the responses array; a timeout keeps the partial one)
  nsp_emit: async (m) => emitWithAck(target(nsp(m.nsp), m), m),
  socket_emit: async (m) => {
    const s = localSocket(m);
    return emitWithAck(m.broadcast || (m.rooms && m.rooms.length) ? target(m.broadcast ? s.broadcast : s, m) : s, m);
  },
  socket_join: async (m) => {
    const s = localSocket(m);
    await s.join(m.room);
    return [...s.rooms];
  },
  socket_leave: async (m) => {
    const s = localSocket(m);
    await s.leave(m.room);
    return [...s.rooms];
  },

  // cluster requests
  fetchSockets: async (m) => sockets(await target(nsp(m.nsp), m).fetchSockets()),
  socketsJoin: async (m) => target(nsp(m.nsp), m).socketsJoin(m.join),
  socketsLeave: async (m) => target(nsp(m.nsp), m).socketsLeave(m.leave),
  disconnectSockets: async (m) => target(nsp(m.nsp), m).disconnectSockets(!!m.close),
  serverSideEmit: async (m) => {
    const n = m.timeout ? nsp(m.nsp).timeout(m.timeout) : nsp(m.nsp);
    const a = fromWire(m.args || []);
    if (!m.ack) return n.serverSideEmit(m.event, ...a);
    return new Promise((resolve, reject) => {
      n.serverSideEmit(m.event, ...a, (err, res) => (err ? reject(failure(err.message, res)) : resolve(res)));
    });
  },
  serverCount: async (m) => nsp(m.nsp).adapter.serverCount(),
  // close one namespace's adapter (0.2: ClusterAdapterWithHeartbeat publishes ADAPTER_CLOSE)
  close_adapter: async (m) => {
    await nsp(m.nsp).adapter.close();
    return true;
  },

  // clients: {client, url, nsp, reuse?, ack_value?, ack: "none"?}
  client_connect: async (m) => {
    const name = m.nsp || '/';
    const s = m.reuse
      ? clients[m.reuse].io.socket(name, { auth: { name: m.client } })
      : req('socket.io-client').io(m.url + name, { forceNew: true, transports: ['websocket'], reconnection: !!m.reconnection, reconnectionDelay: 50, auth: { name: m.client } });
    clients[m.client] = s;
    s.onAny((ev, ...a) => {
      if (bench.quiet.has(m.client)) return;
      const cb = typeof a[a.length - 1] === 'function' ? a.pop() : null;
      event('client_recv', { client: m.client, nsp: name, event: ev, args: toWire(a), with_ack: !!cb });
      if (cb && m.ack !== 'none') cb(m.ack_value !== undefined ? fromWire(m.ack_value) : { client: m.client, event: ev });
    });
    s.on('disconnect', (reason) => event('client_disconnect', { client: m.client, nsp: name, reason }));
    s.on('connect', () => event('client_connect', { client: m.client, nsp: name, id: s.id, recovered: !!s.recovered }));
    if (!s.connected) s.connect();
    await new Promise((resolve, reject) => {
      if (s.connected) return resolve();
      const timer = setTimeout(() => reject(new Error('connect timeout')), parseInt(m.timeout || 5000, 10));
      s.once('connect', () => { clearTimeout(timer); resolve(); });
      s.once('connect_error', (e) => { clearTimeout(timer); reject(failure('connect_error: ' + e.message)); });
    });
    return { id: s.id, engine_id: s.io.engine.id };
  },
  client_emit: async (m) => {
    const s = clients[m.client];
    if (!s) throw new Error('no client ' + m.client);
    const a = fromWire(m.args || []);
    if (m.ack) return new Promise((resolve) => s.emit(m.event, ...a, (...res) => resolve(res)));
    s.emit(m.event, ...a);
    return true;
  },
  client_join: async (m) => (await handlers.client_emit({ client: m.client, event: 'join', args: [m.rooms || m.room], ack: true }))[0],
  client_leave: async (m) => (await handlers.client_emit({ client: m.client, event: 'leave', args: [m.room], ack: true }))[0],
  // close the client's transport without a DISCONNECT packet: the server sees "transport
  // close", a recoverable reason, so connection state recovery persists the session
  client_drop: async (m) => {
    clients[m.client].io.engine.close();
    return true;
  },
  client_close: async (m) => {
    clients[m.client].close();
    return true;
  },
  ...bench.handlers,
  shutdown: async () => {
    setTimeout(() => process.exit(0), 20);
    return true;
  },
};

main(async () => {
  if (args.port !== undefined) await startServer();
  return info();
}, handlers);
