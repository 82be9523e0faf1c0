"""Test harness for Keel: start Apache ZooKeeper or Keel, talk the raw protocol.

Modules:
  servers  -- start/stop/kill/restart a ZooKeeper or Keel server on a free port
  ensemble -- a 3-member (+ observers) ZooKeeper or Keel ensemble on loopback ports
  rawzk    -- a small synchronous ZooKeeper wire-protocol client (jute codec)
  kazoo_ext -- opcodes kazoo 2.10 lacks (addWatch, createTTL, createContainer,
               removeWatches) sent through kazoo's own connection
  wait     -- polling helpers with deadlines (no fixed sleeps)
"""
