"""Known Apache ZooKeeper 3.8.0 defects that the fault rounds run into.

ZooKeeper is the reference here, not the subject: a round against ZooKeeper
whose every anomaly is explained by one of these (its anomaly pattern matches
AND its signature is in a member's log written during the round) is reported
as a known ZooKeeper defect (pytest: xfail) instead of a failure.  Keel gets
no such allowance.

* zk-new-epoch-without-txns -- acknowledged writes lost.  After the leader is
  cut off, the two followers elect one of them; the other receives the DIFF
  and NEWLEADER, writes the new currentEpoch, but its ACK is refused
  ("NEWLEADER ACK from sid: N is from a different epoch") and it goes back to
  LOOKING without the DIFF's transactions on disk.  Its higher epoch then wins
  the next election over members that have the committed transactions, and
  they are truncated ("Cannot send TRUNC to peer sid: N peer zxid is from
  different epoch" / "Unhandled scenario for peer sid: N fall back to use
  snapshot").  This is the ZOOKEEPER-4643 / -4646 / -4685 class issue 19 names.

* zk-stuck-after-uncommitted-reconfig -- no recovery after healing.  A leader
  cut off from both followers is sent a reconfig by its own client; it
  proposes it (the proposal can never commit) and keeps the proposed
  configuration as its last seen one.  After healing, the votes of the new
  leader and its follower make a quorum of the old configuration but not of
  that never-committed one, so the old leader logs "Oracle indicates not to
  follow" for ever and serves nothing until it is restarted.
"""
import re

KNOWN = [
    {
        "id": "zk-new-epoch-without-txns",
        "anomaly": re.compile(r"acknowledged write lost|NOT linearizable|write answered BadVersion|"
                              r": member \S+ has v|final version \d+ but"),
        "log": ("is from a different epoch", "Unhandled scenario for peer sid",
                "Cannot send TRUNC to peer sid"),
        "reason": "ZooKeeper 3.8.0 truncated committed transactions: a follower kept a new epoch "
                  "without the DIFF's transactions and won the next election "
                  "(ZOOKEEPER-4643/4646/4685 class)",
    },
    {
        "id": "zk-stuck-after-uncommitted-reconfig",
        "anomaly": re.compile(r"^liveness|does not serve after healing|final value could not be read|"
                              r"could not read through|final reads:"),
        "log": ("Oracle indicates not to follow",),
        # the only scenario that makes a leader propose a reconfig it cannot commit
        # and keep running ("Oracle indicates not to follow" alone is also logged by
        # ordinary elections)
        "scenarios": ("reconfig-via-deposed-leader",),
        "reason": "ZooKeeper 3.8.0: a deposed leader that proposed a reconfig it could not commit "
                  "never follows the new leader ('Oracle indicates not to follow')",
    },
]


def classify(server, scenario, anomalies, logs):
    """(known ids, unexplained anomalies).  logs: {member name: log text
    written during the round}."""
    if server != "zookeeper" or not anomalies:
        return [], list(anomalies)
    text = "\n".join(logs.values())
    active = [k for k in KNOWN if any(sig in text for sig in k["log"])
              and scenario in k.get("scenarios", (scenario,))]
    known, unexplained = set(), []
    for a in anomalies:
        hit = [k["id"] for k in active if k["anomaly"].search(a)]
        if hit:
            known.update(hit)
        else:
            unexplained.append(a)
    return sorted(known), unexplained


def reason(ids):
    return "; ".join(k["reason"] for k in KNOWN if k["id"] in ids)
