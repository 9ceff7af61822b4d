"""How each adapter dialect asks the cluster: the protocol frames over the transport.

The adapter and the :class:`~siotools.ClusterClient` share these, so a request is made
the same way whether or not the asking process serves sockets.
"""
