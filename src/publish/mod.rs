//! Delivers encoded reports over MQTT with mutual TLS and reads the backend's verdicts
//! (protocol doc §2–§3). Knows nothing of /proc or of how a report is built.
