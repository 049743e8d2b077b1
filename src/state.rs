//! Report ids and the counter baseline on disk, written atomically.
//! Holds no policy.
