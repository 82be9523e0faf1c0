//! keel-net
