'use strict';
// JSON-lines RPC shared by the peers (Node built-ins only).
//
// stdin : {"id": 1, "cmd": "name", ...params}                one object per line
// stdout: {"type": "ready", ...}                              once, after start-up
//         {"type": "reply", "id": 1, "ok": true, "result": ...}
//         {"type": "reply", "id": 1, "ok": false, "error": "...", "result": <partial>}
//         {"type": "event", "name": "...", "t": <epoch s>, ...}
//
// Values JSON cannot carry are tagged both ways: Buffer/Uint8Array/ArrayBuffer
// <-> {"$bin": hex}, Date <-> {"$date": ms}, undefined <-> {"$undefined": true}.
// The process exits when stdin closes, so a dead driver never leaves it behind.

const path = require('path');
const readline = require('readline');
const { createRequire } = require('module');

function parseArgs(argv) {
  const out = {};
  for (let i = 2; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) continue;
    const key = argv[i].slice(2);
    const next = argv[i + 1];
    out[key] = next !== undefined && !next.startsWith('--') ? argv[++i] : 'true';
  }
  return out;
}

// A require() that resolves packages from the folder holding node_modules.
function requireFrom(dir) {
  if (!dir) throw new Error('--modules DIR (the folder holding node_modules) is required');
  return createRequire(path.join(path.resolve(dir), 'peer.js'));
}

function toWire(v, seen = new Set()) {
  if (v === undefined) return { $undefined: true };
  if (v === null || ['number', 'string', 'boolean'].includes(typeof v)) return v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'function') return '<function>';
  if (Buffer.isBuffer(v)) return { $bin: v.toString('hex') };
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString('hex') };
  if (ArrayBuffer.isView(v)) return { $bin: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex') };
  if (v instanceof Date) return { $date: v.getTime() };
  if (v instanceof Error) return { $error: v.message };
  if (seen.has(v)) return '<circular>';
  seen.add(v);
  let out;
  if (Array.isArray(v) || v instanceof Set) out = [...v].map((x) => toWire(x, seen));
  else if (v instanceof Map) out = Object.fromEntries([...v].map(([k, x]) => [String(k), toWire(x, seen)]));
  else out = Object.fromEntries(Object.keys(v).map((k) => [k, toWire(v[k], seen)]));
  seen.delete(v);
  return out;
}

function fromWire(v) {
  if (Array.isArray(v)) return v.map(fromWire);
  if (!v || typeof v !== 'object') return v;
  const keys = Object.keys(v);
  if (keys.length === 1) {
    if (keys[0] === '$bin') return Buffer.from(v.$bin, 'hex');
    if (keys[0] === '$date') return new Date(v.$date);
    if (keys[0] === '$undefined') return undefined;
  }
  return Object.fromEntries(keys.map((k) => [k, fromWire(v[k])]));
}

function send(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function event(name, fields) {
  send({ type: 'event', name, t: Date.now() / 1000, ...fields });
}

// An Error that carries the partial result of a failed operation.
function failure(message, result) {
  const e = new Error(message);
  e.result = result;
  return e;
}

// Promise from a node-style callback API; an error keeps the partial result.
function viaCallback(fn) {
  return new Promise((resolve, reject) => {
    fn((err, res) => {
      if (err) reject(failure(err.message || String(err), res));
      else resolve(res);
    });
  });
}

// handlers: {cmd: async (msg) => result}. Commands run concurrently.
function serve(handlers) {
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  rl.on('line', async (line) => {
    if (!line.trim()) return;
    let msg;
    try {
      msg = JSON.parse(line);
    } catch (e) {
      send({ type: 'reply', id: null, ok: false, error: 'bad json: ' + e.message });
      return;
    }
    const handler = handlers[msg.cmd];
    try {
      if (!handler) throw new Error('unknown command ' + msg.cmd);
      send({ type: 'reply', id: msg.id, ok: true, result: toWire(await handler(msg)) });
    } catch (e) {
      const reply = { type: 'reply', id: msg.id, ok: false, error: (e && e.message) || String(e) };
      if (e && e.result !== undefined) reply.result = toWire(e.result);
      send(reply);
    }
  });
  rl.on('close', () => process.exit(0));
}

// Report (not crash on) errors thrown by library code, e.g. a decoder.
function reportUncaught() {
  process.on('uncaughtException', (e) => event('uncaught_exception', { error: String((e && e.stack) || e) }));
  process.on('unhandledRejection', (e) => event('uncaught_exception', { error: String((e && e.stack) || e) }));
}

// Run the peer: start-up, then announce readiness and serve commands.
function main(startup, handlers) {
  reportUncaught();
  startup()
    .then((ready) => {
      serve(handlers);
      send({ type: 'ready', ...toWire(ready) });
    })
    .catch((e) => {
      console.error((e && e.stack) || e);
      process.exit(1);
    });
}

// client_emit / client_join / client_leave over a peer's socket.io clients (socket.io-client 2 and 4 alike):
// an ack'ed emit resolves with the ack's arguments.
function clientCommands(clients) {
  const client_emit = async (m) => {
    const s = clients[m.client];
    if (!s) throw new Error('no client ' + m.client);
    const a = fromWire(m.args || []);
    if (m.ack) return new Promise((resolve) => s.emit(m.event, ...a, (...res) => resolve(res)));
    s.emit(m.event, ...a);
    return true;
  };
  const client_join = async (m) => (await client_emit({ client: m.client, event: 'join', args: [m.rooms || m.room], ack: true }))[0];
  const client_leave = async (m) => (await client_emit({ client: m.client, event: 'leave', args: [m.room], ack: true }))[0];
  return { client_emit, client_join, client_leave };
}

module.exports = { clientCommands, parseArgs, requireFrom, toWire, fromWire, send, event, failure, viaCallback, main };
