//! TODO(collect): sockdiag source.
//! Owned by the collect work in progress.
