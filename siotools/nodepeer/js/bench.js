'use strict';
// Benchmark commands shared by the peers: count an event on a client without reporting
// each message over the JSON-lines channel (that would measure the channel, not the
// cluster), and read the counters on demand.

// Wall-clock seconds with sub-millisecond resolution (latencies across processes).
const nowS = () => (performance.timeOrigin + performance.now()) / 1000;

function benchClients(clients) {
  const quiet = new Set();
  const counters = {};
  const handlers = {
    // {client, event}: count `event` on that client; latency from args[0].t
    bench_client: async (m) => {
      const s = clients[m.client];
      if (!s) throw new Error('no client ' + m.client);
      quiet.add(m.client);
      const c = (counters[m.client] = { count: 0, first: 0, last: 0, latencies: [] });
      s.on(m.event || 'm', (d) => {
        const now = nowS();
        if (!c.count) c.first = now;
        c.count++;
        c.last = now;
        if (d && typeof d.t === 'number') c.latencies.push(now - d.t);
      });
      return true;
    },
    bench_client_stats: async (m) => counters[m.client] || null,
  };
  return { quiet, handlers };
}

module.exports = { nowS, benchClients };
