//! The run loop: schedule, signals, reload, systemd notify and watchdog.
//! Never parses /proc itself.
