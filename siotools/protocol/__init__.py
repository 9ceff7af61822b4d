"""The Socket.IO Redis wire protocol: pure, no I/O."""
