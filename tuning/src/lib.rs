//! keel-tuning: Keel's performance knobs, named profiles and core placement, in one place.
//!
//! Nothing here changes what Keel does, only how fast and with how much memory it does it:
//! every knob has a default that is correct on any machine, and a profile or an environment
//! variable only moves the trade-off between latency, throughput and memory.
//! Where the knobs act on a request's way through Keel (batch sizes, the log's segments,
//! read buffers, core placement): docs/architecture.md, "One setData, file by file".
//!
//! ```
//! use keel_tuning::{Knobs, Profile};
//!
//! let balanced = Knobs::default();
//! let latency = Knobs::for_profile(Profile::Latency);
//! assert!(latency.max_batch_txns < balanced.max_batch_txns);
//! ```
//!
//! # Environment variables
//!
//! [`Knobs::from_env`] starts from a profile and then applies each variable that is set to a
//! non-empty value (an empty value counts as unset):
//!
//! | variable | knob | accepted values |
//! |---|---|---|
//! | `KEEL_PROFILE` | the starting profile | `balanced` (default), `latency`, `throughput` |
//! | `KEEL_NET_CORES` | [`Knobs::net_cores`] | a whole number, 1 or more |
//! | `KEEL_PIN_CORES` | [`Knobs::pin_cores`] | `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` |
//! | `KEEL_MAX_BATCH_TXNS` | [`Knobs::max_batch_txns`] | a whole number, 1 or more |
//! | `KEEL_MAX_BATCH_BYTES` | [`Knobs::max_batch_bytes`] | a size (see below), 4 KiB or more |
//! | `KEEL_WAL_SEGMENT_BYTES` | [`Knobs::wal_segment_bytes`] | a size, a multiple of 4 KiB, 1 MiB or more, and at least `max_batch_bytes` |
//! | `KEEL_WAL_PREALLOCATE` | [`Knobs::wal_preallocate`] | a boolean as for `KEEL_PIN_CORES` |
//! | `KEEL_READ_BUFFER_BYTES` | [`Knobs::read_buffer_bytes`] | a size, 4 KiB or more |
//!
//! Sizes are a whole number of bytes, optionally followed by a binary unit: `K`/`KiB`,
//! `M`/`MiB`, `G`/`GiB` (case-insensitive; `KB`, `MB`, `GB` are read as binary units too), for
//! example `65536`, `64KiB`, `64k`, `1MiB`, `8M`.

pub mod doctor;

use std::fmt;
use std::str::FromStr;

/// Environment variable naming the starting profile for [`Knobs::from_env`].
pub const ENV_PROFILE: &str = "KEEL_PROFILE";
/// Environment variable overriding [`Knobs::net_cores`].
pub const ENV_NET_CORES: &str = "KEEL_NET_CORES";
/// Environment variable overriding [`Knobs::pin_cores`].
pub const ENV_PIN_CORES: &str = "KEEL_PIN_CORES";
/// Environment variable overriding [`Knobs::max_batch_txns`].
pub const ENV_MAX_BATCH_TXNS: &str = "KEEL_MAX_BATCH_TXNS";
/// Environment variable overriding [`Knobs::max_batch_bytes`].
pub const ENV_MAX_BATCH_BYTES: &str = "KEEL_MAX_BATCH_BYTES";
/// Environment variable overriding [`Knobs::wal_segment_bytes`].
pub const ENV_WAL_SEGMENT_BYTES: &str = "KEEL_WAL_SEGMENT_BYTES";
/// Environment variable overriding [`Knobs::wal_preallocate`].
pub const ENV_WAL_PREALLOCATE: &str = "KEEL_WAL_PREALLOCATE";
/// Environment variable overriding [`Knobs::read_buffer_bytes`].
pub const ENV_READ_BUFFER_BYTES: &str = "KEEL_READ_BUFFER_BYTES";

/// Every environment variable [`Knobs::from_env`] reads, in the order it applies them.
pub const ENV_VARS: [&str; 8] = [
    ENV_PROFILE,
    ENV_NET_CORES,
    ENV_PIN_CORES,
    ENV_MAX_BATCH_TXNS,
    ENV_MAX_BATCH_BYTES,
    ENV_WAL_SEGMENT_BYTES,
    ENV_WAL_PREALLOCATE,
    ENV_READ_BUFFER_BYTES,
];

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// Smallest accepted `max_batch_bytes` and `read_buffer_bytes`.
pub const MIN_BUFFER_BYTES: usize = 4 * KIB;
/// Smallest accepted `wal_segment_bytes`.
pub const MIN_WAL_SEGMENT_BYTES: u64 = MIB as u64;
/// WAL segments are a whole number of these (the O_DIRECT / page alignment Keel writes with).
pub const WAL_SEGMENT_ALIGN: u64 = 4096;

/// Keel's performance knobs. Build one with [`Knobs::default`] (the [`Profile::Balanced`]
/// profile), [`Knobs::for_profile`] or [`Knobs::from_env`], then adjust fields as needed and
/// call [`Knobs::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knobs {
    /// How many network cores (one pinned single-threaded executor each) serve client
    /// connections. Default: the cores this process may run on, minus one left for the WAL
    /// and sequencer threads, and at least 1.
    pub net_cores: usize,
    /// Pin each network core's thread to its own CPU ([`pin_current_thread`]). Default true.
    /// Turn it off when sharing the machine with other busy processes, where a pinned thread
    /// cannot move away from a CPU someone else is hogging.
    pub pin_cores: bool,
    /// Most transactions the leader puts in one proposed batch (one log frame, one
    /// `fdatasync`). Batches grow with load up to this cap and shrink to one when idle.
    /// Default 1024.
    pub max_batch_txns: usize,
    /// Most payload bytes in one proposed batch. Default 1 MiB.
    pub max_batch_bytes: usize,
    /// Size of one write-ahead-log segment file. Default 64 MiB.
    pub wal_segment_bytes: u64,
    /// Create WAL segments at full size, zero-filled, before writing to them, so that an
    /// append never grows the file (growing costs about twice the `fdatasync` time).
    /// Default true; turn off on filesystems where preallocation is slow or unsupported.
    pub wal_preallocate: bool,
    /// Size of each pooled socket read buffer. Default 64 KiB.
    pub read_buffer_bytes: usize,
}

impl Default for Knobs {
    /// The [`Profile::Balanced`] knobs.
    fn default() -> Self {
        Knobs {
            net_cores: default_net_cores(),
            pin_cores: true,
            max_batch_txns: 1024,
            max_batch_bytes: MIB,
            wal_segment_bytes: 64 * MIB as u64,
            wal_preallocate: true,
            read_buffer_bytes: 64 * KIB,
        }
    }
}

/// The cores this process may run on, minus one, and at least 1.
pub fn default_net_cores() -> usize {
    available_cores().saturating_sub(1).max(1)
}

/// How many CPUs this process may run on (its affinity mask and cgroup quota included), at
/// least 1.
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Named sets of knobs. Each one is a complete, valid [`Knobs`]; environment variables and
/// code can still change single knobs on top of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Profile {
    /// The default: batches of up to 1024 transactions / 1 MiB, 64 MiB preallocated WAL
    /// segments, 64 KiB read buffers, pinned cores. Latency at low load stays near one
    /// `fdatasync` plus a round trip, and batching absorbs load spikes. Trades nothing in
    /// particular: neither the lowest tail latency nor the highest peak throughput.
    #[default]
    Balanced,
    /// Small batches (128 transactions / 256 KiB) so that no request waits behind a large
    /// `fdatasync`, with preallocated segments so no append grows a file. Trades peak write
    /// throughput: under heavy load it spends more `fdatasync` calls per transaction.
    Latency,
    /// Large batches (8192 transactions / 8 MiB), 256 MiB WAL segments (fewer rotations) and
    /// 256 KiB read buffers (fewer receive calls for pipelined clients). Trades tail latency
    /// under load (a request may wait for a bigger batch's write) and memory (every
    /// connection's read buffer is four times larger).
    Throughput,
}

impl Profile {
    /// All profiles, in the order they are documented.
    pub const ALL: [Profile; 3] = [Profile::Balanced, Profile::Latency, Profile::Throughput];

    /// The name used by `KEEL_PROFILE` and by [`fmt::Display`].
    pub fn name(self) -> &'static str {
        match self {
            Profile::Balanced => "balanced",
            Profile::Latency => "latency",
            Profile::Throughput => "throughput",
        }
    }

    /// The knobs this profile stands for.
    pub fn knobs(self) -> Knobs {
        let base = Knobs::default();
        match self {
            Profile::Balanced => base,
            Profile::Latency => Knobs {
                max_batch_txns: 128,
                max_batch_bytes: 256 * KIB,
                ..base
            },
            Profile::Throughput => Knobs {
                max_batch_txns: 8192,
                max_batch_bytes: 8 * MIB,
                wal_segment_bytes: 256 * MIB as u64,
                read_buffer_bytes: 256 * KIB,
                ..base
            },
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = KnobError;

    /// Reads `balanced`, `latency` or `throughput` (case-insensitive, surrounding spaces
    /// ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Profile::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| KnobError {
                name: ENV_PROFILE.to_string(),
                value: s.to_string(),
                message: "unknown profile; use balanced, latency or throughput".to_string(),
            })
    }
}

/// A knob that was given a value Keel cannot use: which knob (or environment variable), the
/// value, and what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnobError {
    /// The environment variable (for values read by [`Knobs::from_env`]) or the knob's field
    /// name (for [`Knobs::validate`]).
    pub name: String,
    /// The rejected value, as given.
    pub value: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl fmt::Display for KnobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: {}", self.name, self.value, self.message)
    }
}

impl std::error::Error for KnobError {}

impl Knobs {
    /// The knobs of a named profile (same as [`Profile::knobs`]).
    pub fn for_profile(profile: Profile) -> Knobs {
        profile.knobs()
    }

    /// Knobs from the process environment: the profile named by `KEEL_PROFILE` (default
    /// balanced), then each `KEEL_*` variable listed in the [crate docs](crate) that is set.
    /// The result is validated.
    pub fn from_env() -> Result<Knobs, KnobError> {
        Knobs::from_lookup(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Like [`Knobs::from_env`], with variables read through `lookup` instead of the process
    /// environment (for tests and for embedding programs with their own settings source).
    pub fn from_lookup<F>(lookup: F) -> Result<Knobs, KnobError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let mut knobs = match get(ENV_PROFILE) {
            Some(v) => v.parse::<Profile>()?.knobs(),
            None => Knobs::default(),
        };
        if let Some(v) = get(ENV_NET_CORES) {
            knobs.net_cores = parse_count(ENV_NET_CORES, &v, "cores")?;
        }
        if let Some(v) = get(ENV_PIN_CORES) {
            knobs.pin_cores = parse_bool(ENV_PIN_CORES, &v)?;
        }
        if let Some(v) = get(ENV_MAX_BATCH_TXNS) {
            knobs.max_batch_txns = parse_count(ENV_MAX_BATCH_TXNS, &v, "transactions")?;
        }
        if let Some(v) = get(ENV_MAX_BATCH_BYTES) {
            knobs.max_batch_bytes = to_usize(
                ENV_MAX_BATCH_BYTES,
                &v,
                parse_size(ENV_MAX_BATCH_BYTES, &v)?,
            )?;
        }
        if let Some(v) = get(ENV_WAL_SEGMENT_BYTES) {
            knobs.wal_segment_bytes = parse_size(ENV_WAL_SEGMENT_BYTES, &v)?;
        }
        if let Some(v) = get(ENV_WAL_PREALLOCATE) {
            knobs.wal_preallocate = parse_bool(ENV_WAL_PREALLOCATE, &v)?;
        }
        if let Some(v) = get(ENV_READ_BUFFER_BYTES) {
            knobs.read_buffer_bytes = to_usize(
                ENV_READ_BUFFER_BYTES,
                &v,
                parse_size(ENV_READ_BUFFER_BYTES, &v)?,
            )?;
        }
        knobs.validate_as(true).map_err(|mut e| {
            // Report the variable's text as the user wrote it.
            if let Some(raw) = get(&e.name) {
                e.value = raw;
            }
            e
        })?;
        Ok(knobs)
    }

    /// Checks that the knobs work together: every count at least 1, buffers at least 4 KiB,
    /// WAL segments a multiple of 4 KiB, at least 1 MiB and able to hold the largest batch.
    pub fn validate(&self) -> Result<(), KnobError> {
        self.validate_as(false)
    }

    /// `env_names`: name the environment variable in errors rather than the field.
    fn validate_as(&self, env_names: bool) -> Result<(), KnobError> {
        let err = |field: &str, env: &str, value: String, message: String| KnobError {
            name: if env_names {
                env.to_string()
            } else {
                field.to_string()
            },
            value,
            message,
        };
        if self.net_cores == 0 {
            return Err(err(
                "net_cores",
                ENV_NET_CORES,
                "0".into(),
                "at least 1 network core is needed".into(),
            ));
        }
        if self.max_batch_txns == 0 {
            return Err(err(
                "max_batch_txns",
                ENV_MAX_BATCH_TXNS,
                "0".into(),
                "a batch must be allowed at least 1 transaction".into(),
            ));
        }
        if self.max_batch_bytes < MIN_BUFFER_BYTES {
            return Err(err(
                "max_batch_bytes",
                ENV_MAX_BATCH_BYTES,
                self.max_batch_bytes.to_string(),
                format!("must be at least {MIN_BUFFER_BYTES} bytes (4KiB)"),
            ));
        }
        if self.read_buffer_bytes < MIN_BUFFER_BYTES {
            return Err(err(
                "read_buffer_bytes",
                ENV_READ_BUFFER_BYTES,
                self.read_buffer_bytes.to_string(),
                format!("must be at least {MIN_BUFFER_BYTES} bytes (4KiB)"),
            ));
        }
        let seg = self.wal_segment_bytes;
        if seg < MIN_WAL_SEGMENT_BYTES || seg & (WAL_SEGMENT_ALIGN - 1) != 0 {
            return Err(err(
                "wal_segment_bytes",
                ENV_WAL_SEGMENT_BYTES,
                seg.to_string(),
                format!(
                    "must be a multiple of {WAL_SEGMENT_ALIGN} bytes and at least {MIN_WAL_SEGMENT_BYTES} (1MiB), e.g. 64MiB"
                ),
            ));
        }
        if seg < self.max_batch_bytes as u64 {
            return Err(err(
                "wal_segment_bytes",
                ENV_WAL_SEGMENT_BYTES,
                seg.to_string(),
                format!(
                    "a WAL segment must hold the largest batch: raise it to at least max_batch_bytes ({}) or lower max_batch_bytes",
                    self.max_batch_bytes
                ),
            ));
        }
        Ok(())
    }
}

fn parse_count(name: &str, value: &str, unit: &str) -> Result<usize, KnobError> {
    match value.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(KnobError {
            name: name.to_string(),
            value: value.to_string(),
            message: format!("expected a whole number of {unit}, 1 or more"),
        }),
    }
}

/// Reads `true/false`, `1/0`, `yes/no`, `on/off` (case-insensitive).
fn parse_bool(name: &str, value: &str) -> Result<bool, KnobError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(KnobError {
            name: name.to_string(),
            value: value.to_string(),
            message: "expected true or false (also accepted: 1/0, yes/no, on/off)".to_string(),
        }),
    }
}

/// Reads a byte size: digits, optionally followed by `K`, `KiB`, `KB`, `M`, `MiB`, `MB`, `G`,
/// `GiB`, `GB` (all binary multiples, case-insensitive), spaces allowed between.
pub fn parse_size(name: &str, value: &str) -> Result<u64, KnobError> {
    let bad = |why: &str| KnobError {
        name: name.to_string(),
        value: value.to_string(),
        message: format!("{why}; expected a size in bytes such as 65536, 64KiB, 1MiB or 2GiB"),
    };
    let text = value.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(bad("no number"));
    }
    let number: u64 = digits.parse().map_err(|_| bad("number too large"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(bad("unknown unit")),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| bad("size too large"))
}

fn to_usize(name: &str, value: &str, n: u64) -> Result<usize, KnobError> {
    usize::try_from(n).map_err(|_| KnobError {
        name: name.to_string(),
        value: value.to_string(),
        message: "size too large for this machine".to_string(),
    })
}

/// Pins the calling thread to the `core_index`-th CPU among those this process may run on
/// (as listed by `core_affinity::get_core_ids`, so index 0 is the first allowed CPU, not
/// necessarily CPU 0). Returns true when the thread is now pinned; returns false and changes
/// nothing when the CPUs cannot be listed (unsupported platform, restricted container),
/// when `core_index` is past the last allowed CPU, or when the OS refuses.
pub fn pin_current_thread(core_index: usize) -> bool {
    let Some(cores) = core_affinity::get_core_ids() else {
        return false;
    };
    match cores.get(core_index) {
        Some(core) => core_affinity::set_for_current(*core),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_are_the_balanced_profile_and_valid() {
        let k = Knobs::default();
        assert_eq!(k, Profile::Balanced.knobs());
        assert_eq!(k.net_cores, available_cores().saturating_sub(1).max(1));
        assert!(k.net_cores >= 1);
        assert!(k.pin_cores);
        assert_eq!(k.max_batch_txns, 1024);
        assert_eq!(k.max_batch_bytes, 1 << 20);
        assert_eq!(k.wal_segment_bytes, 64 << 20);
        assert!(k.wal_preallocate);
        assert_eq!(k.read_buffer_bytes, 64 << 10);
        k.validate().expect("defaults are valid");
    }

    #[test]
    fn every_profile_is_valid_and_trades_as_documented() {
        for p in Profile::ALL {
            p.knobs().validate().unwrap_or_else(|e| panic!("{p}: {e}"));
            assert_eq!(Knobs::for_profile(p), p.knobs());
        }
        let (b, l, t) = (
            Profile::Balanced.knobs(),
            Profile::Latency.knobs(),
            Profile::Throughput.knobs(),
        );
        assert!(l.max_batch_txns < b.max_batch_txns && b.max_batch_txns < t.max_batch_txns);
        assert!(l.max_batch_bytes < b.max_batch_bytes && b.max_batch_bytes < t.max_batch_bytes);
        assert!(t.wal_segment_bytes > b.wal_segment_bytes);
        assert!(t.read_buffer_bytes > b.read_buffer_bytes);
        assert!(l.wal_preallocate);
    }

    #[test]
    fn profile_names_round_trip() {
        for p in Profile::ALL {
            assert_eq!(p.name().parse::<Profile>(), Ok(p));
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!(" Throughput ".parse::<Profile>(), Ok(Profile::Throughput));
        let e = "fast".parse::<Profile>().unwrap_err();
        assert_eq!(e.name, "KEEL_PROFILE");
        assert!(
            e.to_string().contains("balanced, latency or throughput"),
            "{e}"
        );
        assert_eq!(Profile::default(), Profile::Balanced);
    }

    #[test]
    fn empty_environment_gives_defaults() {
        assert_eq!(Knobs::from_lookup(lookup(&[])), Ok(Knobs::default()));
        // An empty value counts as unset.
        assert_eq!(
            Knobs::from_lookup(lookup(&[("KEEL_NET_CORES", " ")])),
            Ok(Knobs::default())
        );
    }

    #[test]
    fn every_variable_is_read() {
        let k = Knobs::from_lookup(lookup(&[
            ("KEEL_NET_CORES", "3"),
            ("KEEL_PIN_CORES", "off"),
            ("KEEL_MAX_BATCH_TXNS", "77"),
            ("KEEL_MAX_BATCH_BYTES", "512KiB"),
            ("KEEL_WAL_SEGMENT_BYTES", "16M"),
            ("KEEL_WAL_PREALLOCATE", "FALSE"),
            ("KEEL_READ_BUFFER_BYTES", "8192"),
        ]))
        .expect("valid");
        assert_eq!(
            k,
            Knobs {
                net_cores: 3,
                pin_cores: false,
                max_batch_txns: 77,
                max_batch_bytes: 512 << 10,
                wal_segment_bytes: 16 << 20,
                wal_preallocate: false,
                read_buffer_bytes: 8192,
            }
        );
    }

    #[test]
    fn profile_variable_is_the_base_and_single_knobs_override_it() {
        let k = Knobs::from_lookup(lookup(&[
            ("KEEL_PROFILE", "throughput"),
            ("KEEL_MAX_BATCH_TXNS", "10"),
        ]))
        .expect("valid");
        assert_eq!(k.max_batch_txns, 10);
        assert_eq!(
            k.max_batch_bytes,
            Profile::Throughput.knobs().max_batch_bytes
        );
        assert_eq!(k.wal_segment_bytes, 256 << 20);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases: &[(&str, &str, &str)] = &[
            ("KEEL_PROFILE", "turbo", "unknown profile"),
            ("KEEL_NET_CORES", "two", "whole number of cores"),
            ("KEEL_NET_CORES", "0", "1 or more"),
            ("KEEL_NET_CORES", "-1", "whole number"),
            ("KEEL_PIN_CORES", "maybe", "true or false"),
            ("KEEL_MAX_BATCH_TXNS", "0", "1 or more"),
            ("KEEL_MAX_BATCH_BYTES", "1K", "at least 4096"),
            ("KEEL_MAX_BATCH_BYTES", "lots", "no number"),
            ("KEEL_WAL_SEGMENT_BYTES", "5000000", "multiple of 4096"),
            ("KEEL_WAL_SEGMENT_BYTES", "64 parsecs", "unknown unit"),
            (
                "KEEL_WAL_SEGMENT_BYTES",
                "99999999999999999999",
                "too large",
            ),
            ("KEEL_WAL_PREALLOCATE", "2", "true or false"),
            ("KEEL_READ_BUFFER_BYTES", "100", "at least 4096"),
        ];
        for (var, value, expect) in cases {
            let e = Knobs::from_lookup(lookup(&[(var, value)])).expect_err(var);
            assert_eq!(e.name, *var, "{e}");
            assert_eq!(e.value, value.to_string(), "{e}");
            assert!(e.to_string().contains(expect), "{var}={value}: {e}");
        }
    }

    #[test]
    fn segment_must_hold_the_largest_batch() {
        let e = Knobs::from_lookup(lookup(&[
            ("KEEL_MAX_BATCH_BYTES", "8MiB"),
            ("KEEL_WAL_SEGMENT_BYTES", "4MiB"),
        ]))
        .expect_err("segment smaller than a batch");
        assert_eq!(e.name, "KEEL_WAL_SEGMENT_BYTES");
        assert!(e.message.contains("largest batch"), "{e}");

        let k = Knobs {
            wal_segment_bytes: 1 << 20,
            max_batch_bytes: 2 << 20,
            ..Knobs::default()
        };
        let e = k.validate().expect_err("invalid");
        assert_eq!(e.name, "wal_segment_bytes");
    }

    #[test]
    fn validate_names_fields() {
        let k = Knobs {
            net_cores: 0,
            ..Knobs::default()
        };
        assert_eq!(k.validate().unwrap_err().name, "net_cores");
        let k = Knobs {
            read_buffer_bytes: 10,
            ..Knobs::default()
        };
        assert_eq!(k.validate().unwrap_err().name, "read_buffer_bytes");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("x", "65536"), Ok(65536));
        assert_eq!(parse_size("x", "64k"), Ok(64 << 10));
        assert_eq!(parse_size("x", "64 KiB"), Ok(64 << 10));
        assert_eq!(parse_size("x", "1MB"), Ok(1 << 20));
        assert_eq!(parse_size("x", "2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("x", "7b"), Ok(7));
        assert!(parse_size("x", "").is_err());
        assert!(parse_size("x", "1.5M").is_err());
        assert!(parse_size("x", "-4K").is_err());
        assert!(parse_size("x", "18446744073709551615G").is_err());
    }

    #[test]
    fn pinning_never_panics_and_refuses_missing_cores() {
        // Run in a scratch thread so the test runner's threads keep their affinity.
        let handle = std::thread::spawn(|| {
            let ids = core_affinity::get_core_ids();
            let first = pin_current_thread(0);
            let past_end = pin_current_thread(usize::MAX);
            (ids.map(|v| v.len()), first, past_end)
        });
        let (count, first, past_end) = handle.join().expect("no panic");
        assert!(!past_end, "an index past the last core cannot be pinned");
        if count.unwrap_or(0) == 0 {
            assert!(!first);
        }
        // Where cores can be listed (Linux), pinning to the first one succeeds.
        #[cfg(target_os = "linux")]
        if count.unwrap_or(0) > 0 {
            assert!(first);
        }
    }
}
