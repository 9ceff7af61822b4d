#!/usr/bin/env node
'use strict';
// socket.io 4.8.4 + @socket.io/redis-adapter 8.3.0 (classic or sharded), with
// socket.io-client 4.8.4, @socket.io/redis-emitter 5.1.0 and redis 4.7.1.
//   node peer.js --modules DIR --name A --port 3001 --redis-port 6390 [--redis-host H]
//                [--key socket.io] [--nsps /,/chat] [--requests-timeout MS]
//                [--adapter classic|sharded] [--subscription-mode dynamic|static|dynamic-private]
//                [--sse-events sse,sse-ack] [--sse-mode reply|silent]
//                [--specific-response-channel true] [--parser json]
//                [--redis-cluster true]   (node-redis createCluster from that seed node)
// Without --port: a client/emitter-only process.

const http = require('http');
const { parseArgs, requireFrom, toWire, fromWire, event, failure, main } = require('../js/rpc');

const args = parseArgs(process.argv);
const req = requireFrom(args.modules);
const NAME = args.name || 'peer';
const REDIS_URL = `redis://${args['redis-host'] || '127.0.0.1'}:${args['redis-port'] || '6379'}`;
const KEY = args.key || 'socket.io';
const NSPS = (args.nsps || '/').split(',').filter(Boolean);
const ADAPTER = args.adapter || 'classic';
// RA's "redis@4 cluster" / "[sharded] redis@4 cluster" setups: a node-redis cluster client.
const CLUSTER = args['redis-cluster'] === 'true';
const SSE_EVENTS = (args['sse-events'] || 'sse,sse-ack').split(',').filter(Boolean);
let sseMode = args['sse-mode'] || 'reply';

let io = null;
let listenPort = null;
let subscribed = async () => {};
const clients = {};
const bench = require('../js/bench').benchClients(clients);
const emitters = {};

// A connected node-redis client; the first connection error rejects (no endless retry).
async function redisClient() {
  const redis = req('redis');
  const c = CLUSTER ? redis.createCluster({ rootNodes: [{ url: REDIS_URL }] }) : redis.createClient({ url: REDIS_URL });
  const failed = new Promise((resolve, reject) => c.once('error', reject));
  c.on('error', (e) => event('redis_error', { error: String(e) }));
  await Promise.race([c.connect(), failed]);
  return c;
}

// Record the promises of the sub client's (p/s)subscribe calls, to await them.
function trackSubscriptions(sub) {
  const pending = new Set();
  for (const method of ['subscribe', 'pSubscribe', 'sSubscribe']) {
    const orig = sub[method].bind(sub);
    sub[method] = (...a) => {
      const p = orig(...a);
      pending.add(p);
      p.finally(() => pending.delete(p)).catch(() => {});
      return p;
    };
  }
  return () => Promise.allSettled([...pending]);
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
    socket.data = { name: client, node: NAME };
    event('connection', { nsp: n.name, sid: socket.id, client });
    socket.on('join', async (rooms, ack) => {
      socket.join(rooms);
      await subscribed(); // sharded/dynamic: the room channel is subscribed on join
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
  const adapters = req('@socket.io/redis-adapter');
  const pub = await redisClient();
  const sub = pub.duplicate();
  sub.on('error', (e) => event('redis_error', { error: String(e) }));
  await Promise.race([sub.connect(), new Promise((resolve, reject) => sub.once('error', reject))]);
  subscribed = trackSubscriptions(sub);
  const timeout = parseInt(args['requests-timeout'] || '5000', 10);
  const adapter = ADAPTER === 'sharded'
    ? adapters.createShardedAdapter(pub, sub, { channelPrefix: KEY, subscriptionMode: args['subscription-mode'] || 'dynamic' })
    : adapters.createAdapter(pub, sub, {
      key: KEY,
      requestsTimeout: timeout,
      publishOnSpecificResponseChannel: args['specific-response-channel'] === 'true',
      // RA's custom-parser test: JSON for broadcasts and the msgpack request types.
      ...(args.parser === 'json' ? { parser: { encode: (v) => JSON.stringify(v), decode: (b) => JSON.parse(b) } } : {}),
    });
  const server = http.createServer();
  io = new (req('socket.io').Server)(server, { adapter, transports: ['websocket', 'polling'] });
  for (const name of NSPS) setupNamespace(io.of(name));
  await subscribed();
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

function emitter(key) {
  key = key || KEY;
  if (!emitters[key]) {
    emitters[key] = redisClient().then((c) => new (req('@socket.io/redis-emitter').Emitter)(c, { key }));
  }
  return emitters[key];
}

async function emitterTarget(m) {
  let e = (await emitter(m.key)).of(m.nsp || '/');
  if (m.rooms && m.rooms.length) e = e.to(m.rooms);
  if (m.except && m.except.length) e = e.except(m.except);
  for (const f of m.flags || []) e = e[f];
  return e;
}

const handlers = {
  ping: async () => 'pong',
  // wait until every (P/S)SUBSCRIBE issued so far is confirmed (sharded subscribes per room)
  settle: async () => subscribed().then(() => true),
  info: async () => ({ name: NAME, flavor: 'current', key: KEY, adapter: ADAPTER, uid: io ? nsp('/').adapter.uid : null, uids: uids(), nsps: io ? state() : {}, clients: Object.fromEntries(Object.entries(clients).map(([k, s]) => [k, { id: s.id, nsp: s.nsp, connected: s.connected }])) }),
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
    await subscribed();
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
  allRooms: async (m) => [...(await nsp(m.nsp).adapter.allRooms())],
  serverCount: async (m) => nsp(m.nsp).adapter.serverCount(),

  // @socket.io/redis-emitter: {key, nsp, rooms, except, flags[] (getter names), ...}
  emitter_emit: async (m) => (await emitterTarget(m)).emit(m.event, ...fromWire(m.args || [])),
  emitter_socketsJoin: async (m) => (await emitterTarget(m)).socketsJoin(m.join),
  emitter_socketsLeave: async (m) => (await emitterTarget(m)).socketsLeave(m.leave),
  emitter_disconnectSockets: async (m) => (await emitterTarget(m)).disconnectSockets(!!m.close),
  emitter_serverSideEmit: async (m) => (await emitter(m.key)).of(m.nsp || '/').serverSideEmit(m.event, ...fromWire(m.args || [])),

  // clients: {client, url, nsp, reuse?, ack_value?, ack: "none"?}
  client_connect: async (m) => {
    const name = m.nsp || '/';
    const s = m.reuse
      ? clients[m.reuse].io.socket(name, { auth: { name: m.client } })
      : req('socket.io-client').io(m.url + name, { forceNew: true, transports: ['websocket'], reconnection: false, auth: { name: m.client } });
    clients[m.client] = s;
    s.onAny((ev, ...a) => {
      if (bench.quiet.has(m.client)) return;
      const cb = typeof a[a.length - 1] === 'function' ? a.pop() : null;
      event('client_recv', { client: m.client, nsp: name, event: ev, args: toWire(a), with_ack: !!cb });
      if (cb && m.ack !== 'none') cb(m.ack_value !== undefined ? fromWire(m.ack_value) : { client: m.client, event: ev });
    });
    s.on('disconnect', (reason) => event('client_disconnect', { client: m.client, nsp: name, reason }));
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
  return { name: NAME, flavor: 'current', port: listenPort, key: KEY, adapter: ADAPTER, uid: io ? nsp('/').adapter.uid : null, uids: uids(), nsps: io ? state() : {} };
}, handlers);
