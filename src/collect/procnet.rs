//! TODO(collect): procnet source.
//! Owned by the collect work in progress.
