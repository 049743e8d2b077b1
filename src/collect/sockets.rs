//! TODO(collect): sockets source.
//! Owned by the collect work in progress.
