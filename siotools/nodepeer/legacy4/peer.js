#!/usr/bin/env node
'use strict';
// socket.io 1.7.4 + socket.io-redis 4.0.1 (+ socket.io-client 1.7.4).
//   node peer.js --modules DIR --name A --port 3001 --redis-port 6390 [--redis-host H]
//                [--key socket.io] [--nsps /,/chat] [--requests-timeout MS] [--custom-hook reply|silent]
//                [--multiplexing true|false]   (adapter option withChannelMultiplexing, default true)
// Without --port: a client-only process.
require('../js/legacy').run({
  name: 'legacy4',
  adapter: 'socket.io-redis',
  emitter: null,
  adapterOptions: (args, base) => ({
    ...base,
    requestsTimeout: parseInt(args['requests-timeout'] || '1000', 10),
    withChannelMultiplexing: args.multiplexing !== 'false',
  }),
});
