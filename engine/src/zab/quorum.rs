//! Quorum arithmetic: who makes a majority, and how far a majority has got, for one
//! membership or two at once (a pending reconfiguration, when every decision needs a
//! majority of the voters in force *and* of the new ones, as in ZooKeeper).
//!
//! Pure functions over voter lists; `ReplicaConfig::has_quorum` and
//! `ReplicaConfig::quorum_zxid` apply them to the membership in force and the pending
//! one. Only voters count: an observer or a stranger that says yes changes nothing.

use super::Sid;

/// Whether the voters `yes` picks are a strict majority of `voters` (none of an empty
/// list: an ensemble with no voter decides nothing).
pub fn majority(voters: &[Sid], mut yes: impl FnMut(Sid) -> bool) -> bool {
    voters.iter().filter(|s| yes(**s)).count() > voters.len() / 2
}

/// [`majority`] of `voters` and, while a reconfiguration is pending, of `next` too.
pub fn joint(voters: &[Sid], next: Option<&[Sid]>, mut yes: impl FnMut(Sid) -> bool) -> bool {
    majority(voters, &mut yes) && next.is_none_or(|n| majority(n, &mut yes))
}

/// The highest zxid a majority of `voters` has reached, given each one's (`None`: not
/// counted): the majority's lowest.
pub fn majority_zxid(voters: &[Sid], of: impl Fn(Sid) -> Option<i64>) -> Option<i64> {
    let mut z: Vec<i64> = voters.iter().filter_map(|s| of(*s)).collect();
    let q = voters.len() / 2 + 1;
    if z.len() < q {
        return None;
    }
    z.sort_unstable_by(|a, b| b.cmp(a));
    Some(z[q - 1])
}

/// [`majority_zxid`] of `voters` and, while a reconfiguration is pending, of `next`:
/// the lower of the two (a zxid is committed only when both majorities have it).
pub fn joint_zxid(
    voters: &[Sid],
    next: Option<&[Sid]>,
    of: impl Fn(Sid) -> Option<i64>,
) -> Option<i64> {
    let a = majority_zxid(voters, &of)?;
    match next {
        Some(n) => majority_zxid(n, &of).map(|b| a.min(b)),
        None => Some(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (voters, pending voters, who says yes, quorum?)
    type Case = (&'static [Sid], Option<&'static [Sid]>, &'static [Sid], bool);
    /// (voters, pending voters, the zxid a quorum reached)
    type ZxidCase = (&'static [Sid], Option<&'static [Sid]>, Option<i64>);

    const QUORUMS: &[Case] = &[
        // A single membership: a strict majority.
        (&[1, 2, 3], None, &[1, 2], true),
        (&[1, 2, 3], None, &[1], false),
        (&[1, 2, 3], None, &[1, 9, 10], false), // non-voters do not count
        (&[1, 2, 3, 4], None, &[1, 2], false),  // 2 of 4 is no majority
        (&[1, 2, 3, 4], None, &[1, 2, 3], true),
        (&[1], None, &[1], true),
        (&[], None, &[1, 2, 3], false), // no voters, no quorum
        (&[1, 2, 3, 4, 5], None, &[1, 3, 5], true),
        (&[1, 2, 3, 4, 5], None, &[4, 5], false),
        // Joint: {1,2,3} -> {1,2,4,5}.
        (&[1, 2, 3], Some(&[1, 2, 4, 5]), &[1, 2], false), // the new side is short
        (&[1, 2, 3], Some(&[1, 2, 4, 5]), &[1, 4, 5], false), // the old side is short
        (&[1, 2, 3], Some(&[1, 2, 4, 5]), &[1, 2, 4], true),
        // Removing a follower: {1,2,3} -> {1,2}; both of the new are needed.
        (&[1, 2, 3], Some(&[1, 2]), &[1, 3], false),
        (&[1, 2, 3], Some(&[1, 2]), &[1, 2], true),
        // Adding one: 2 of the new 4 is no majority.
        (&[1, 2, 3], Some(&[1, 2, 3, 4]), &[1, 2], false),
        (&[1, 2, 3], Some(&[1, 2, 3, 4]), &[1, 2, 4], true),
        // Replacing everyone: {4,5} -> {2,3}; a majority of each, disjoint.
        (&[4, 5], Some(&[2, 3]), &[2, 3, 4], false),
        (&[4, 5], Some(&[2, 3]), &[2, 3, 4, 5], true),
    ];

    #[test]
    fn quorums_simple_and_joint() {
        for (voters, next, yes, want) in QUORUMS {
            assert_eq!(
                joint(voters, *next, |s| yes.contains(&s)),
                *want,
                "voters {voters:?} next {next:?} yes {yes:?}"
            );
            if next.is_none() {
                assert_eq!(majority(voters, |s| yes.contains(&s)), *want);
            }
        }
    }

    #[test]
    fn quorum_zxids_simple_and_joint() {
        let acked = |s: Sid| match s {
            1 => Some(10),
            2 => Some(7),
            3 => Some(5),
            4 => Some(9),
            _ => None,
        };
        let cases: &[ZxidCase] = &[
            (&[1, 2, 3], None, Some(7)),
            (&[1, 2, 3, 4], None, Some(7)),
            (&[1, 5, 6], None, None), // one of three reports
            (&[1], None, Some(10)),
            (&[], None, None),
            (&[1, 2, 3], Some(&[1, 3, 4]), Some(7)), // {1,3,4} reached 9: the lower
            (&[1, 4], Some(&[2, 3]), Some(5)),
            (&[1, 2, 3], Some(&[5, 6, 7]), None),
        ];
        for (voters, next, want) in cases {
            assert_eq!(
                joint_zxid(voters, *next, acked),
                *want,
                "voters {voters:?} next {next:?}"
            );
        }
    }
}
