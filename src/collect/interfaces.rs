//! TODO(collect): interfaces source.
//! Owned by the collect work in progress.
