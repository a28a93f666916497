"""ZeroMQ bridge of ngp-sdk: the wire protocol (:mod:`bridges.protocol`), a server and a client.

Importing this package imports nothing else: :mod:`bridges.protocol` needs only msgpack, numpy and the
standard library, so any client can use it without Warp or pyzmq installed.
"""
