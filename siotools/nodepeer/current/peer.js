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
//                [--redis-use-replicas true]   (with it: createCluster's useReplicas, which
//                 sends keyless read-only commands such as PUBLISH to masters and replicas
//                 in turn, and SPUBLISH to its slot's master or one of its replicas)
// Without --port: a client/emitter-only process.
// The commands it shares with ../streams/peer.js are in ../js/handlers.js.

const http = require('http');
const { parseArgs, requireFrom, fromWire, event, main } = require('../js/rpc');
const { socketio4Peer, listen } = require('../js/handlers');

const args = parseArgs(process.argv);
const req = requireFrom(args.modules);
const NAME = args.name || 'peer';
const REDIS_URL = `redis://${args['redis-host'] || '127.0.0.1'}:${args['redis-port'] || '6379'}`;
const KEY = args.key || 'socket.io';
const NSPS = (args.nsps || '/').split(',').filter(Boolean);
const ADAPTER = args.adapter || 'classic';
// RA's "redis@4 cluster" / "[sharded] redis@4 cluster" setups: a node-redis cluster client.
const CLUSTER = args['redis-cluster'] === 'true';
const USE_REPLICAS = args['redis-use-replicas'] === 'true';

let io = null;
let listenPort = null;
let subscribed = async () => {};
const emitters = {};
const peer = socketio4Peer({
  name: NAME,
  server: () => io,
  connect: (url, options) => req('socket.io-client').io(url, options),
  sseEvents: (args['sse-events'] || 'sse,sse-ack').split(',').filter(Boolean),
  sseMode: args['sse-mode'] || 'reply',
  afterJoin: () => subscribed(), // sharded/dynamic: the room channel is subscribed on join
  recovery: false,
  clientOptions: () => ({ reconnection: false }),
  clientConnectEvents: false,
});
const { nsp, state, uids } = peer;

// A connected node-redis client; the first connection error rejects (no endless retry).
async function redisClient() {
  const redis = req('redis');
  const c = CLUSTER
    ? redis.createCluster({ rootNodes: [{ url: REDIS_URL }], useReplicas: USE_REPLICAS })
    : redis.createClient({ url: REDIS_URL });
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
  for (const name of NSPS) peer.setupNamespace(io.of(name));
  await subscribed();
  listenPort = await listen(server, args.port);
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
  ...peer.handlers,
  // wait until every (P/S)SUBSCRIBE issued so far is confirmed (sharded subscribes per room)
  settle: async () => subscribed().then(() => true),
  info: async () => ({ name: NAME, flavor: 'current', key: KEY, adapter: ADAPTER, uid: io ? nsp('/').adapter.uid : null, uids: uids(), nsps: io ? state() : {}, clients: peer.clientsInfo() }),

  allRooms: async (m) => [...(await nsp(m.nsp).adapter.allRooms())],

  // @socket.io/redis-emitter: {key, nsp, rooms, except, flags[] (getter names), ...}
  emitter_emit: async (m) => (await emitterTarget(m)).emit(m.event, ...fromWire(m.args || [])),
  emitter_socketsJoin: async (m) => (await emitterTarget(m)).socketsJoin(m.join),
  emitter_socketsLeave: async (m) => (await emitterTarget(m)).socketsLeave(m.leave),
  emitter_disconnectSockets: async (m) => (await emitterTarget(m)).disconnectSockets(!!m.close),
  emitter_serverSideEmit: async (m) => (await emitter(m.key)).of(m.nsp || '/').serverSideEmit(m.event, ...fromWire(m.args || [])),
};

main(async () => {
  if (args.port !== undefined) await startServer();
  return { name: NAME, flavor: 'current', port: listenPort, key: KEY, adapter: ADAPTER, uid: io ? nsp('/').adapter.uid : null, uids: uids(), nsps: io ? state() : {} };
}, handlers);
