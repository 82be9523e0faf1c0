//! keel-tuning
