//! TODO(collect): netdev source.
//! Owned by the collect work in progress.
