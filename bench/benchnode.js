#!/usr/bin/env node
'use strict';
// Benchmark-only Node process, driven over the peers' JSON-lines protocol (rpc.js):
//
//   node benchnode.js --modules DIR --role server --port 0 --redis-port P [--key K]
//     a socket.io 4.8 + @socket.io/redis-adapter 8.3 (classic) node, as the "current"
//     peer, plus the benchmark commands the legacy peers have (bench_emit, bench_node_count,
//     bench_node_stats) and a `join` handler that acks with the socket's rooms.
//   node benchnode.js --modules DIR --role clients
//     many light websocket clients in one process: the Engine.IO/Socket.IO handshake done by
//     hand on `ws` (no parser), each message counted by its first two characters. The
//     fan-out case needs 1,000 sockets; a socket.io-client per socket would cost more CPU
//     than the server under test.
//
// --modules is the folder of the "current" flavour's node_modules (ws is taken from there).

const http = require('http');
const path = require('path');
const rpc = require(path.join(__dirname, '..', 'siotools', 'nodepeer', 'js', 'rpc'));
const { nowS } = require(path.join(__dirname, '..', 'siotools', 'nodepeer', 'js', 'bench'));

const args = rpc.parseArgs(process.argv);
const req = rpc.requireFrom(args.modules);
const ROLE = args.role || 'server';

// CPU seconds this process used (user + system), to show whether it was the bottleneck.
const cpuS = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

// ------------------------------------------------------------------------- server role

async function server() {
  const { createAdapter } = req('@socket.io/redis-adapter');
  const url = `redis://${args['redis-host'] || '127.0.0.1'}:${args['redis-port'] || '6379'}`;
  const pub = req('redis').createClient({ url });
  await pub.connect();
  const sub = pub.duplicate();
  await sub.connect();
  const httpServer = http.createServer();
  const io = new (req('socket.io').Server)(httpServer, {
    adapter: createAdapter(pub, sub, { key: args.key || 'socket.io' }),
    transports: ['websocket'],
  });
  io.on('connection', (socket) => {
    socket.on('join', (rooms, ack) => {
      socket.join(rooms);
      if (ack) ack([...socket.rooms]);
    });
  });
  await new Promise((resolve) => setTimeout(resolve, 200)); // the adapter's PSUBSCRIBE
  await new Promise((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(parseInt(args.port || '0', 10), '127.0.0.1', resolve);
  });
  const counter = { count: 0, first: 0, last: 0 };
  const handlers = {
    ping: async () => 'pong',
    cpu: async () => cpuS(),
    // {room, n, rate}: as the legacy peers' bench_emit
    bench_emit: async (m) => {
      const start = process.hrtime.bigint();
      if (!m.rate) {
        for (let i = 0; i < m.n; i++) io.to(m.room).emit('m', { i, t: nowS() });
      } else {
        const t0 = Date.now();
        let i = 0;
        while (i < m.n) {
          const due = Math.min(m.n, Math.floor(((Date.now() - t0) / 1000) * m.rate) + 1);
          for (; i < due; i++) io.to(m.room).emit('m', { i, t: nowS() });
          await new Promise((r) => setTimeout(r, 1));
        }
      }
      const looped = Number(process.hrtime.bigint() - start) / 1e9;
      await pub.ping(); // every PUBLISH before it has been answered
      return { loop_s: looped, flushed_s: Number(process.hrtime.bigint() - start) / 1e9 };
    },
    // {room, n, timeout}: n broadcasts with acknowledgements, one after the other, each
    // awaited until every client of the room (on every node) has answered
    bench_emit_ack: async (m) => {
      const start = process.hrtime.bigint();
      let acks = 0;
      for (let i = 0; i < m.n; i++) {
        const responses = await io.timeout(m.timeout || 10000).to(m.room).emitWithAck('m', { i, t: nowS() });
        acks += responses.length;
      }
      return { s: Number(process.hrtime.bigint() - start) / 1e9, acks };
    },
    // Count the broadcasts this node's adapter decoded from Redis: RedisAdapter.onmessage
    // (redis-adapter 8.3 dist/index.js) decodes, then calls socket.io-adapter's
    // Adapter.prototype.broadcast for remote packets only.
    bench_node_count: async () => {
      const adapter = io.of('/').adapter;
      const base = Object.getPrototypeOf(Object.getPrototypeOf(adapter));
      const orig = base.broadcast;
      base.broadcast = function (packet, opts) {
        if (this === adapter) {
          const now = nowS();
          if (!counter.count) counter.first = now;
          counter.count++;
          counter.last = now;
        }
        return orig.call(this, packet, opts);
      };
      // own emits also reach Adapter.prototype.broadcast (RedisAdapter.broadcast -> super):
      // they are not counted because B never emits in the benchmark.
      return true;
    },
    bench_node_stats: async () => counter,
    shutdown: async () => {
      setTimeout(() => process.exit(0), 20);
      return true;
    },
  };
  return { port: httpServer.address().port, uid: io.of('/').adapter.uid, handlers };
}

// ------------------------------------------------------------------------ clients role

function clients() {
  const WebSocket = req('ws');
  const sockets = [];
  const counter = { count: 0, first: 0, last: 0, latencies: [], bad: 0 };
  let sampleEvery = 0; // record the latency of every k-th message (0: none)
  let pinger = null;

  function count(data) {
    const now = nowS();
    if (!counter.count) counter.first = now;
    counter.count++;
    counter.last = now;
    if (sampleEvery && counter.count % sampleEvery === 0) {
      const at = data.indexOf('"t":');
      if (at > 0) counter.latencies.push(now - parseFloat(data.slice(at + 4)));
    }
  }

  // One socket: open, connect the namespace, join the room, then count "42" messages.
  function open(m) {
    const eio = m.eio || 4;
    const url = m.url.replace(/^http/, 'ws') + `/socket.io/?EIO=${eio}&transport=websocket`;
    // socket.io-client's default is perMessageDeflate {threshold: 1024}: it offers the
    // extension, so a server that accepts it compresses what it sends.
    const ws = new WebSocket(url, { perMessageDeflate: m.deflate === false ? false : { threshold: 1024 } });
    sockets.push(ws);
    return new Promise((resolve, reject) => {
      let state = 0;
      const timer = setTimeout(() => reject(new Error('client handshake timeout')), 20000);
      ws.on('error', (e) => reject(e));
      ws.on('message', (raw, isBinary) => {
        const data = isBinary ? '' : raw.toString();
        if (state === 2) {
          if (data.charCodeAt(0) === 52 && data.charCodeAt(1) === 50) {
            // "42": an event; "42<id>[...]" asks for an ack, answered with no arguments
            const c = data.charCodeAt(2);
            if (c >= 48 && c <= 57) ws.send('43' + data.slice(2, data.indexOf('[')) + '[]');
            return count(data);
          }
          if (data === '2') return ws.send('3'); // Engine.IO 4: the server pings
          if (data !== '3') counter.bad++;
          return;
        }
        if (data[0] === '0' && state === 0) {
          state = 1;
          if (eio === 4) ws.send('40'); // Engine.IO 3 connects "/" by itself
        } else if (data.startsWith('40') && state === 1) {
          ws.send('421' + JSON.stringify(['join', m.room]));
        } else if (data.startsWith('431') && state === 1) {
          state = 2;
          clearTimeout(timer);
          resolve();
        } else if (data === '2') {
          ws.send('3');
        }
      });
    });
  }

  const handlers = {
    ping: async () => 'pong',
    cpu: async () => cpuS(),
    // {url, n, room, eio: 3|4, deflate}: open n more sockets (20 at a time)
    connect: async (m) => {
      for (let i = 0; i < m.n; i += 20) {
        const batch = [];
        for (let j = i; j < Math.min(m.n, i + 20); j++) batch.push(open(m));
        await Promise.all(batch);
      }
      if (m.eio === 3 && !pinger) {
        // Engine.IO 3: the client pings (socket.io 2.5 closes a socket silent for 30 s)
        pinger = setInterval(() => sockets.forEach((ws) => ws.readyState === 1 && ws.send('2')), 15000);
      }
      return sockets.length;
    },
    // {sample}: zero the counters; keep the latency of every sample-th message
    reset: async (m) => {
      Object.assign(counter, { count: 0, first: 0, last: 0, latencies: [], bad: 0 });
      sampleEvery = m.sample || 0;
      return true;
    },
    stats: async () => ({ ...counter, cpu: cpuS(), open: sockets.filter((ws) => ws.readyState === 1).length }),
    shutdown: async () => {
      sockets.forEach((ws) => ws.terminate());
      setTimeout(() => process.exit(0), 20);
      return true;
    },
  };
  return { port: null, handlers };
}

let handlers = null;
const dispatch = new Proxy({}, { get: (_, name) => handlers && handlers[name] });
rpc.main(async () => {
  const made = ROLE === 'server' ? await server() : clients();
  handlers = made.handlers;
  return { role: ROLE, port: made.port, uid: made.uid || null };
}, dispatch);
