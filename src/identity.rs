//! Thing name / MQTT client ID rules (protocol doc §4).
//! Knows nothing about MQTT.
