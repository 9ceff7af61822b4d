'use strict';
// What the socket.io 4.x peers (current: @socket.io/redis-adapter, streams:
// @socket.io/redis-streams-adapter) share: the namespace set-up, the broadcast, cluster
// request and client commands. It requires no npm package: each flavor has its own
// node_modules, so the peer hands in the server (once started) and a client factory.

const { clientCommands, toWire, fromWire, event, failure } = require('./rpc');
const { benchClients } = require('./bench');

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

// Listen on 127.0.0.1:port (0: a free one); resolves to the port bound.
function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(parseInt(port, 10), '127.0.0.1', () => resolve(server.address().port));
  });
}

function sockets(list) {
  return list.map((s) => ({ id: s.id, rooms: [...s.rooms], data: s.data, remote: !s.conn }));
}

// opts:
//   name          this node's name (socket.data.node, server-side-emit replies)
//   server()      the socket.io Server, or null before start-up / without --port
//   connect(url, options)  socket.io-client's io() from the flavor's node_modules
//   sseEvents, sseMode     the serverSideEmit events answered, and how (reply|silent)
//   afterJoin()   awaited after a socket joins, before the join is answered (none: answer at once)
//   recovery      report connection state recovery (socket.recovered) and keep a recovered socket's data
//   clientOptions(m)       the client_connect message's own io() options
//   clientConnectEvents    report every client connect (a recovered one too) as an event
function socketio4Peer(opts) {
  const NAME = opts.name;
  let sseMode = opts.sseMode;
  const clients = {};
  const bench = benchClients(clients);

  function nsp(name) {
    const io = opts.server();
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
      if (opts.recovery) {
        if (!socket.recovered) socket.data = { name: client, node: NAME };
        event('connection', { nsp: n.name, sid: socket.id, client, recovered: !!socket.recovered });
      } else {
        socket.data = { name: client, node: NAME };
        event('connection', { nsp: n.name, sid: socket.id, client });
      }
      socket.on('join', opts.afterJoin
        ? async (rooms, ack) => {
          socket.join(rooms);
          await opts.afterJoin();
          if (ack) ack([...socket.rooms]);
        }
        : (rooms, ack) => {
          socket.join(rooms);
          if (ack) ack([...socket.rooms]);
        });
      socket.on('leave', (room, ack) => {
        socket.leave(room);
        if (ack) ack([...socket.rooms]);
      });
      socket.on('disconnect', (reason) => event('disconnect', { nsp: n.name, sid: socket.id, reason }));
    });
    for (const ev of opts.sseEvents) {
      n.on(ev, (...a) => {
        const cb = typeof a[a.length - 1] === 'function' ? a.pop() : null;
        event('server_side_emit', { nsp: n.name, event: ev, args: toWire(a), with_ack: !!cb, mode: sseMode });
        if (cb && sseMode === 'reply') cb({ node: NAME, event: ev, args: a });
      });
    }
  }

  function state() {
    const out = {};
    for (const [name, n] of opts.server()._nsps) {
      const sids = Object.fromEntries([...n.adapter.sids].map(([sid, rooms]) => [sid, [...rooms]]));
      out[name] = { uid: n.adapter.uid, sockets: [...n.sockets.keys()], sids, rooms: [...n.adapter.rooms.keys()] };
    }
    return out;
  }

  function uids() {
    const io = opts.server();
    return io ? Object.fromEntries([...io._nsps].map(([k, n]) => [k, n.adapter.uid])) : {};
  }

  const clientsInfo = () => Object.fromEntries(Object.entries(clients).map(([k, s]) => [k, { id: s.id, nsp: s.nsp, connected: s.connected }]));

  const handlers = {
    ping: async () => 'pong',
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
      if (opts.afterJoin) await opts.afterJoin();
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

    // clients: {client, url, nsp, reuse?, ack_value?, ack: "none"?}
    client_connect: async (m) => {
      const name = m.nsp || '/';
      const s = m.reuse
        ? clients[m.reuse].io.socket(name, { auth: { name: m.client } })
        : opts.connect(m.url + name, { forceNew: true, transports: ['websocket'], ...opts.clientOptions(m), auth: { name: m.client } });
      clients[m.client] = s;
      s.onAny((ev, ...a) => {
        if (bench.quiet.has(m.client)) return;
        const cb = typeof a[a.length - 1] === 'function' ? a.pop() : null;
        event('client_recv', { client: m.client, nsp: name, event: ev, args: toWire(a), with_ack: !!cb });
        if (cb && m.ack !== 'none') cb(m.ack_value !== undefined ? fromWire(m.ack_value) : { client: m.client, event: ev });
      });
      s.on('disconnect', (reason) => event('client_disconnect', { client: m.client, nsp: name, reason }));
      if (opts.clientConnectEvents) {
        s.on('connect', () => event('client_connect', { client: m.client, nsp: name, id: s.id, recovered: !!s.recovered }));
      }
      if (!s.connected) s.connect();
      await new Promise((resolve, reject) => {
        if (s.connected) return resolve();
        const timer = setTimeout(() => reject(new Error('connect timeout')), parseInt(m.timeout || 5000, 10));
        s.once('connect', () => { clearTimeout(timer); resolve(); });
        s.once('connect_error', (e) => { clearTimeout(timer); reject(failure('connect_error: ' + e.message)); });
      });
      return { id: s.id, engine_id: s.io.engine.id };
    },
    ...clientCommands(clients),
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

  return { clients, nsp, setupNamespace, state, uids, clientsInfo, handlers };
}

module.exports = { socketio4Peer, listen };
