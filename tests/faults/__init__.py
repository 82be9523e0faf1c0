"""Real-process fault suite: Keel and Apache ZooKeeper 3.8 ensembles under
partitions, pauses, kill -9 and reconfiguration, with a linearizability check.

    python3 -m pytest tests/faults -q                       # CI part (KEEL_TEST_SERVERS picks servers)
    python3 -m pytest tests/faults -q -m slow               # every scenario, re-election times
    python3 -m tests.faults --budget 600 --servers keel,zookeeper   # long run (see docs/faults.md)

How it works
------------
* net.py: each member of a 3-member ensemble runs in a network namespace of
  its own, created by the test (`ip netns add`), linked by veth pairs to a
  bridge in a hub namespace where the clients live; addresses in a 10.x.y.0/24
  no interface or route of the machine uses.  Nothing is sent outside these
  namespaces.  Partitions are iptables DROP rules inside member namespaces.
  Everything is deleted on exit (also after a failure; a run that was killed
  is swept by the next one).  Without root, iproute2, iptables or namespace
  support the tests skip, saying why.
* cluster.py: harness.ensemble.Ensemble (the suite's launcher, zoo.cfg and
  -D properties, `reconfigEnabled=true`, superuser `super:test`) placed in
  those namespaces; faults: partitions, SIGSTOP/SIGCONT, kill -9 of one or all
  members, reconfig while a fault lasts.
* workload.py: kazoo clients (one pinned to each member, two roaming) doing
  compare-and-set (`set` with `version=`) and barrier reads on a few keys,
  every operation recorded with its call and return times and outcome.
* checker.py: a Wing-Gong / Porcupine-style search with memoisation, per key,
  over the compare-and-set register model; counts acknowledged writes lost
  from the final values read after healing.
* scenarios.py: the faults, the round that runs one and checks it, and the
  re-election measurement (fault on the leader -> first acknowledged write).

Barrier reads
-------------
A read in ZooKeeper is answered by the member the client is connected to,
from its own copy: a follower that is behind, or a leader that has been
replaced without knowing it yet (partitioned away, or paused and resumed),
answers from an old state.  `sync` does not help: the leader answers it
without a quorum round (it only makes the follower catch up with the
leader's own log), so a deposed leader answers sync too.  So a read here is
`get` (data d, version v) followed by a multi holding `check(key, version=v)`:
the multi is a write as far as the ensemble goes (forwarded to the leader,
ordered, logged by a quorum before it is answered).  If the check succeeds,
the version -- and with it the data, since each version of a key names one
value -- was current at the multi's place in the committed order, which lies
between the read's call and its return: that is the read's linearization
point.  A deposed leader cannot get a quorum to log the check, so it cannot
confirm a stale read.  A read whose check fails or is not answered is left
out of the history (reads change nothing) and counted as unconfirmed.
"""
import os
import sys

_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
