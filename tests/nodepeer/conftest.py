"""Fixtures of the Node interop harness tests (defined in ``fixtures.py``)."""

from tests.nodepeer.fixtures import node_available, node_install, node_peers

__all__ = ["node_available", "node_install", "node_peers"]
