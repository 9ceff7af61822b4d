'use strict';
// Legacy peer (socket.io 1.x/2.x with socket.io-redis 4.x/5.x): a server node
// with the Redis adapter and/or socket.io clients, driven over JSON lines.
// The flavor's peer.js supplies the adapter options and the emitter factory.

const http = require('http');
const { clientCommands, parseArgs, requireFrom, toWire, fromWire, event, failure, viaCallback, main } = require('./rpc');
const { nowS, benchClients } = require('./bench');

// Wrap sub.subscribe/psubscribe so start-up can wait until Redis confirmed them.
function trackSubscriptions(sub) {
  const pending = new Set();
  for (const method of ['subscribe', 'psubscribe']) {
    const orig = sub[method].bind(sub);
    sub[method] = (...a) => {
      const cb = typeof a[a.length - 1] === 'function' ? a.pop() : null;
      const p = new Promise((resolve) => orig(...a, (err, res) => {
        if (cb) cb(err, res);
        resolve();
      }));
      pending.add(p);
      p.then(() => pending.delete(p));
    };
  }
  return () => Promise.all([...pending]);
}

// Join rooms one by one (socket.io 1.x only takes a single room).
function joinAll(socket, rooms) {
  return [].concat(rooms).reduce((p, room) => p.then(() => new Promise((r) => socket.join(room, r))), Promise.resolve());
}

function run(flavor) {
  const args = parseArgs(process.argv);
  const req = requireFrom(args.modules);
  const NAME = args.name || 'peer';
  const HOST = args['redis-host'] || '127.0.0.1';
  const PORT = parseInt(args['redis-port'] || '6379', 10);
  const KEY = args.key || 'socket.io';
  const NSPS = (args.nsps || '/').split(',').filter(Boolean);
  let hookMode = args['custom-hook'] || 'reply';
  let io = null;
  let listenPort = null;
  let subscribed = async () => {};
  const clients = {};
  const emitters = {};
  const bench = benchClients(clients);
  const nodeCounters = {};

  function nsp(name) {
    if (!io) throw new Error('no server in this peer (started without --port)');
    return io.of(name || '/');
  }

  function localSocket(m) {
    const socket = nsp(m.nsp).connected[m.sid];
    if (!socket) throw new Error('no local socket ' + m.sid);
    return socket;
  }

  function setupNamespace(n) {
    n.adapter.on('error', (e) => event('adapter_error', { nsp: n.name, error: String(e) }));
    n.adapter.customHook = (data, cb) => {
      event('custom_hook', { nsp: n.name, data: toWire(data), mode: hookMode });
      if (hookMode === 'reply') cb({ node: NAME, nsp: n.name, echo: data });
    };
    n.on('connection', (socket) => {
      event('connection', { nsp: n.name, sid: socket.id, client: socket.handshake.query.name || null });
      socket.on('join', (rooms, ack) => joinAll(socket, rooms).then(() => ack && ack(Object.keys(socket.rooms))));
      socket.on('leave', (room, ack) => socket.leave(room, () => ack && ack(Object.keys(socket.rooms))));
      socket.on('disconnect', (reason) => event('disconnect', { nsp: n.name, sid: socket.id, reason }));
    });
  }

  function state() {
    const out = {};
    for (const [name, n] of Object.entries(io.nsps)) {
      const sids = {};
      for (const sid of Object.keys(n.adapter.sids)) sids[sid] = Object.keys(n.adapter.sids[sid]);
      out[name] = { uid: n.adapter.uid, sockets: Object.keys(n.connected), sids, rooms: Object.keys(n.adapter.rooms) };
    }
    return out;
  }

  function uids() {
    return io ? Object.fromEntries(Object.entries(io.nsps).map(([k, n]) => [k, n.adapter.uid])) : {};
  }

  // {volatile, local, json, compress, binary} -> chained flag getters/methods
  function withFlags(op, flags) {
    for (const [flag, value] of Object.entries(flags || {})) {
      if (flag === 'compress' || flag === 'binary') {
        if (typeof op[flag] !== 'function') throw new Error(`flag ${flag} not supported by ${flavor.name}`);
        op = op[flag](value);
      } else if (value) {
        if (!(flag in op)) throw new Error(`flag ${flag} not supported by ${flavor.name}`);
        op = op[flag];
      }
    }
    return op;
  }

  function emit(op, m) {
    for (const r of m.rooms || []) op = op.to(r);
    withFlags(op, m.flags).emit(m.event, ...fromWire(m.args || []));
    return true;
  }

  async function startServer() {
    const server = http.createServer();
    io = req('socket.io')(server, { transports: ['websocket', 'polling'] });
    const factory = req(flavor.adapter)(flavor.adapterOptions(args, { host: HOST, port: PORT, key: KEY }));
    subscribed = trackSubscriptions(factory.subClient);
    io.adapter(factory);
    for (const name of NSPS) setupNamespace(io.of(name));
    // Fail fast if Redis cannot be reached (the clients would retry forever).
    await Promise.race([subscribed(), new Promise((resolve, reject) => {
      factory.pubClient.once('error', reject);
      factory.subClient.once('error', reject);
    })]);
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(parseInt(args.port, 10), '127.0.0.1', resolve);
    });
    listenPort = server.address().port;
  }

  function adapterCall(method, m, ...a) {
    return viaCallback((cb) => nsp(m.nsp).adapter[method](...a, cb));
  }

  const handlers = {
    ping: async () => 'pong',
    // wait until every (P)SUBSCRIBE issued so far is confirmed (4.x subscribes per room)
    settle: async () => subscribed().then(() => true),
    info: async () => ({ name: NAME, flavor: flavor.name, key: KEY, uid: io ? nsp('/').adapter.uid : null, uids: uids(), nsps: io ? state() : {}, clients: Object.fromEntries(Object.entries(clients).map(([k, s]) => [k, { id: s.id, nsp: s.nsp, connected: s.connected }])) }),
    set_custom_hook: async (m) => (hookMode = m.mode),

    // broadcasts: {nsp, rooms[], flags{}, event, args[]}; socket_emit adds {sid, broadcast}
    nsp_emit: async (m) => emit(nsp(m.nsp), m),
    socket_emit: async (m) => emit(m.broadcast ? localSocket(m).broadcast : localSocket(m), m),
    socket_join: async (m) => {
      const s = localSocket(m);
      await joinAll(s, m.room);
      return Object.keys(s.rooms);
    },
    socket_leave: async (m) => {
      const s = localSocket(m);
      await new Promise((r) => s.leave(m.room, r));
      return Object.keys(s.rooms);
    },

    // adapter requests (errors carry the partial result, e.g. on timeouts)
    clients: async (m) => adapterCall('clients', m, m.rooms || []),
    clientRooms: async (m) => adapterCall('clientRooms', m, m.sid),
    allRooms: async (m) => adapterCall('allRooms', m),
    remoteJoin: async (m) => adapterCall('remoteJoin', m, m.sid, m.room),
    remoteLeave: async (m) => adapterCall('remoteLeave', m, m.sid, m.room),
    remoteDisconnect: async (m) => adapterCall('remoteDisconnect', m, m.sid, !!m.close),
    customRequest: async (m) => adapterCall('customRequest', m, fromWire(m.data)),

    // emitter: {key, nsp, rooms[], flags[] (getter names), event, args}
    emitter_emit: async (m) => {
      if (!flavor.emitter) throw new Error('no emitter in ' + flavor.name);
      const key = m.key || KEY;
      emitters[key] = emitters[key] || req(flavor.emitter)({ host: HOST, port: PORT, key });
      let e = emitters[key];
      if (m.nsp && m.nsp !== '/') e = e.of(m.nsp);
      for (const r of m.rooms || []) e = e.to(r);
      for (const f of m.flags || []) e = e[f];
      e.emit(m.event, ...fromWire(m.args || []));
      return true;
    },

    // clients: {client, url, nsp, reuse?} (reuse = multiplex on that client's connection)
    client_connect: async (m) => {
      const name = m.nsp || '/';
      const s = m.reuse
        ? clients[m.reuse].io.socket(name)
        : req('socket.io-client')(m.url + (name === '/' ? '' : name), { forceNew: true, transports: ['websocket'], reconnection: false, query: { name: m.client } });
      clients[m.client] = s;
      const onevent = s.onevent;
      s.onevent = function (packet) {
        const data = packet.data || [];
        if (bench.quiet.has(m.client)) return onevent.call(this, packet);
        event('client_recv', { client: m.client, nsp: name, event: data[0], args: toWire(data.slice(1)), ack_id: packet.id === undefined ? null : packet.id });
        return onevent.call(this, packet);
      };
      s.on('disconnect', (reason) => event('client_disconnect', { client: m.client, nsp: name, reason }));
      await new Promise((resolve, reject) => {
        if (s.connected) return resolve();
        const timer = setTimeout(() => reject(new Error('connect timeout')), parseInt(m.timeout || 5000, 10));
        s.once('connect', () => { clearTimeout(timer); resolve(); });
        s.once('connect_error', (e) => { clearTimeout(timer); reject(failure('connect_error: ' + e)); });
        s.once('error', (e) => { clearTimeout(timer); reject(failure('error: ' + e)); });
      });
      return { id: s.id, engine_id: s.io.engine.id };
    },
    ...clientCommands(clients),
    client_close: async (m) => {
      clients[m.client].close();
      return true;
    },
    // --- benchmarks -------------------------------------------------------------
    // {nsp, room, n, rate}: emit n messages {i, t} to room; rate 0 = as fast as the
    // loop goes (then wait for Redis to take them), else paced at rate msgs/s.
    bench_emit: async (m) => {
      const op = () => nsp(m.nsp).to(m.room);
      const pub = nsp(m.nsp).adapter.pubClient;
      const start = process.hrtime.bigint();
      if (!m.rate) {
        for (let i = 0; i < m.n; i++) op().emit('m', { i, t: nowS() });
      } else {
        const t0 = Date.now();
        let i = 0;
        while (i < m.n) {
          const due = Math.min(m.n, Math.floor(((Date.now() - t0) / 1000) * m.rate) + 1);
          for (; i < due; i++) op().emit('m', { i, t: nowS() });
          await new Promise((r) => setTimeout(r, 1));
        }
      }
      const looped = Number(process.hrtime.bigint() - start) / 1e9;
      await new Promise((r) => pub.ping(r));
      return { loop_s: looped, flushed_s: Number(process.hrtime.bigint() - start) / 1e9 };
    },
    // count broadcasts this node's adapter decoded from Redis (remote ones)
    bench_node_count: async (m) => {
      const a = nsp(m.nsp).adapter;
      const c = (nodeCounters[m.nsp || '/'] = { count: 0, first: 0, last: 0 });
      const orig = a.broadcast;
      a.broadcast = function (packet, opts, remote) {
        if (remote) {
          const now = nowS();
          if (!c.count) c.first = now;
          c.count++;
          c.last = now;
        }
        return orig.apply(this, arguments);
      };
      return true;
    },
    bench_node_stats: async (m) => nodeCounters[m.nsp || '/'] || null,
    ...bench.handlers,

    shutdown: async () => {
      setTimeout(() => process.exit(0), 20);
      return true;
    },
  };

  main(async () => {
    if (args.port !== undefined) await startServer();
    return { name: NAME, flavor: flavor.name, port: listenPort, key: KEY, uid: io ? nsp('/').adapter.uid : null, uids: uids(), nsps: io ? state() : {} };
  }, handlers);
}

module.exports = { run };
