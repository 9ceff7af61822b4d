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
//                [--redis-cluster true]   (node-redis createCluster from that seed node)
// Without --port: a client-only process. There is no emitter: @socket.io/redis-streams-emitter
// is not published on npm.
// The commands it shares with ../current/peer.js are in ../js/handlers.js.

const http = require('http');
const { parseArgs, requireFrom, event, main } = require('../js/rpc');
const { socketio4Peer, listen } = require('../js/handlers');

const args = parseArgs(process.argv);
const req = requireFrom(args.modules);
const NAME = args.name || 'peer';
const REDIS_URL = `redis://${args['redis-host'] || '127.0.0.1'}:${args['redis-port'] || '6379'}`;
const VERSION = args['streams-version'] || '0.3';
const PACKAGE = { '0.3': '@socket.io/redis-streams-adapter', '0.2': 'redis-streams-adapter-0.2' }[VERSION];
const STREAM = args.stream || 'socket.io';
const KEY = args.key || 'socket.io';
const NSPS = (args.nsps || '/').split(',').filter(Boolean);
// A node-redis cluster client: the adapter duplicates it once per stream, and each
// duplicate's XREAD goes to the master of its stream's slot.
const CLUSTER = args['redis-cluster'] === 'true';
// Every connection of this peer carries this name, so readiness can be read from CLIENT LIST.
const CLIENT_NAME = `siopeer-${NAME}-${process.pid}`.replace(/[^A-Za-z0-9_.-]/g, '_');

let io = null;
let pub = null;
let listenPort = null;
const peer = socketio4Peer({
  name: NAME,
  server: () => io,
  connect: (url, options) => req('socket.io-client').io(url, options),
  sseEvents: (args['sse-events'] || 'sse,sse-ack').split(',').filter(Boolean),
  sseMode: args['sse-mode'] || 'reply',
  afterJoin: null,
  recovery: true, // connection state recovery: a recovered socket keeps its data
  clientOptions: (m) => ({ reconnection: !!m.reconnection, reconnectionDelay: 50 }),
  clientConnectEvents: true,
});
const { clients, nsp, state, uids } = peer;

const intArg = (name) => (args[name] !== undefined ? parseInt(args[name], 10) : undefined);

// A connected node-redis client; the first connection error rejects (no endless retry).
async function redisClient() {
  const redis = req('redis');
  const c = CLUSTER
    ? redis.createCluster({ rootNodes: [{ url: REDIS_URL }], defaults: { name: CLIENT_NAME } })
    : redis.createClient({ url: REDIS_URL, name: CLIENT_NAME });
  const failed = new Promise((resolve, reject) => c.once('error', reject));
  c.on('error', (e) => event('redis_error', { error: String(e) }));
  await Promise.race([c.connect(), failed]);
  return c;
}

// The adapter reads the stream from "$" (entries added before its first XREAD are never
// seen) and, in 0.3, subscribes to its pub/sub channels on a duplicate: wait until this
// peer's connections are blocked in XREAD and (0.3) subscribed, as CLIENT LIST shows.
// On a Redis Cluster, every master's CLIENT LIST (each stream is read on its slot's master).
async function clientList() {
  if (!CLUSTER) return pub.sendCommand(['CLIENT', 'LIST']);
  const lists = [];
  for (const master of pub.masters) {
    const client = await pub.nodeClient(master);
    lists.push(await client.sendCommand(['CLIENT', 'LIST']));
  }
  return lists.join('\n');
}

async function waitReady(timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const mine = (await clientList())
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
    peer.setupNamespace(n);
  }
  await waitReady(10000);
  listenPort = await listen(server, args.port);
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
  ...peer.handlers,
  settle: async () => (io ? waitReady(5000).then(() => true) : true),
  info: async () => ({ ...info(), clients: peer.clientsInfo() }),

  // close one namespace's adapter (0.2: ClusterAdapterWithHeartbeat publishes ADAPTER_CLOSE)
  close_adapter: async (m) => {
    await nsp(m.nsp).adapter.close();
    return true;
  },
  // close the client's transport without a DISCONNECT packet: the server sees "transport
  // close", a recoverable reason, so connection state recovery persists the session
  client_drop: async (m) => {
    clients[m.client].io.engine.close();
    return true;
  },
};

main(async () => {
  if (args.port !== undefined) await startServer();
  return info();
}, handlers);
