"""The cluster transport against a real Node sharded adapter on the same Redis Cluster.

A socket.io 4.8.4 server with @socket.io/redis-adapter 8.3.0's ``createShardedAdapter``
on node-redis 4.7.1 ``createCluster`` clients (RA's "[sharded] redis cluster" setup):
Node's ``serverCount()`` (SHARDNUMSUB summed over the masters) and ours agree, our
SPUBLISH reaches the Node adapter, and its SPUBLISH reaches our subscriber.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from siotools.redis_cluster import RedisCluster
from siotools.transport.cluster import parse_cluster_url
from siotools.transport.cluster_pubsub import ClusterPublisher, ClusterSubscriber
from tests.nodepeer.fixtures import InstallFn

pytestmark = pytest.mark.node

SCRIPT = r"""
'use strict';
const [modules, url, key] = process.argv.slice(2);
const req = (m) => require(require.resolve(m, { paths: [modules] }));
const { Server } = req('socket.io');
const { createShardedAdapter } = req('@socket.io/redis-adapter');
const { createCluster } = req('redis');
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
(async () => {
  const pub = createCluster({ rootNodes: [{ url }] });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const io = new Server({ adapter: createShardedAdapter(pub, sub, { channelPrefix: key }) });
  const adapter = io.of('/').adapter;
  io.on('hello', (...args) => say({ got: args }));
  await new Promise((r) => setTimeout(r, 300)); // the adapter's SSUBSCRIBEs are not awaitable
  say({ ready: true, uid: adapter.uid });
  const rl = require('readline').createInterface({ input: process.stdin });
  for await (const line of rl) {
    const cmd = JSON.parse(line);
    if (cmd.op === 'count') say({ count: await adapter.serverCount() });
    if (cmd.op === 'emit') { io.serverSideEmit('from-node', 42); say({ emitted: true }); }
    if (cmd.op === 'quit') break;
  }
  await adapter.close(); // no engine to close: the server never listened
  await Promise.all([pub.quit(), sub.quit()]);
  process.exit(0);
})().catch((e) => { say({ error: String(e) }); process.exit(1); });
"""


class NodeShardedNode:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def read(self) -> dict[str, object]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 15)
        assert line, "the Node process ended"
        reply: dict[str, object] = json.loads(line)
        assert "error" not in reply, reply["error"]
        return reply

    async def ask(self, op: str) -> dict[str, object]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op}).encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.read()


async def test_node_sharded_adapter_on_the_cluster(
    node_install: InstallFn, sharded_cluster: RedisCluster, key: str, tmp_path: Path
) -> None:
    modules = node_install("current")
    script = tmp_path / "sharded_cluster_node.js"
    script.write_text(SCRIPT)
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(script),
        str(modules),
        sharded_cluster.url.rsplit("/", 1)[0],
        key,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    node = NodeShardedNode(proc)
    ep = parse_cluster_url(sharded_cluster.url, cluster=True)[0]
    inbox: list[tuple[bytes, bytes]] = []
    got = asyncio.Event()
    pub = ClusterPublisher(ep)
    sub = ClusterSubscriber(ep, lambda ch, payload, _: (inbox.append((ch, payload)), got.set()))
    try:
        ready = await node.read()
        assert ready["ready"] is True
        await pub.start()
        await sub.start()
        main = f"{key}#/#".encode()
        # Node counts itself on the main channel, summed over the masters; so do we.
        assert (await node.ask("count"))["count"] == 1
        assert await pub.shardnumsub(main) == 1
        await sub.ssubscribe([main])
        assert (await node.ask("count"))["count"] == 2
        assert await pub.shardnumsub(main) == 2
        # Our SPUBLISH of a ClusterAdapter SERVER_SIDE_EMIT reaches the Node adapter.
        message = {
            "type": 9,
            "data": {"packet": ["hello", "from python"]},
            "uid": "0123456789abcdef",
        }
        message["nsp"] = "/"
        pub.spublish(main, json.dumps(message, separators=(",", ":")).encode())
        assert (await node.read())["got"] == ["from python"]
        # Node's SPUBLISH (serverSideEmit) reaches our sharded subscriber.
        assert (await node.ask("emit"))["emitted"] is True

        async def from_node() -> dict[str, object]:
            # Our subscriber hears our own SPUBLISH first (it is on the main channel too).
            while True:
                for channel, payload in inbox:
                    decoded: dict[str, object] = json.loads(payload)
                    if channel == main and decoded["uid"] == ready["uid"]:
                        return decoded
                got.clear()
                await got.wait()

        decoded = await asyncio.wait_for(from_node(), 5)
        assert decoded["type"] == 9 and decoded["nsp"] == "/"
        assert decoded["data"] == {"packet": ["from-node", 42]}
    finally:
        if proc.returncode is None:
            with_quit = proc.stdin is not None and not proc.stdin.is_closing()
            if with_quit:
                assert proc.stdin is not None
                proc.stdin.write(b'{"op":"quit"}\n')
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await sub.close()
        await pub.close()
