#!/usr/bin/env node
'use strict';
// socket.io 4.8.4 + @socket.io/redis-adapter 8.2.1: the same peer as ../current/peer.js
// (options and commands alike), on the last release before the sharded adapter moved onto
// socket.io-adapter's ClusterAdapter (8.3.0). Its sharded messages are {uid, type, data}
// without nsp, and it knows the subscription modes static and dynamic only.
require('../current/peer.js');
