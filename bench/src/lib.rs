//! keel-bench
