#!/usr/bin/env node
'use strict';
// socket.io 2.5.1 + socket.io-redis 5.4.0 (+ socket.io-client 2.5.0, socket.io-emitter 3.2.0).
//   node peer.js --modules DIR --name A --port 3001 --redis-port 6390 [--redis-host H]
//                [--key socket.io] [--nsps /,/chat] [--requests-timeout MS] [--custom-hook reply|silent]
// Without --port: a client/emitter-only process.
require('../js/legacy').run({
  name: 'legacy5',
  adapter: 'socket.io-redis',
  emitter: 'socket.io-emitter',
  adapterOptions: (args, base) => ({ ...base, requestsTimeout: parseInt(args['requests-timeout'] || '5000', 10) }),
});
