//! TODO(collect): processes source.
//! Owned by the collect work in progress.
