//! The alarm event: one JSON object per transition, field names as AWS's violation
//! notifications (detect-rules §6.2, §6.3; issue #8 item 3) plus our `reportId`. Does not
//! decide when events happen (see `engine.rs`) nor where they are sent.

use std::net::IpAddr;

use super::metrics::Datapoint;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventType {
    InAlarm,
    AlarmCleared,
    AlarmInvalidated,
}

impl EventType {
    pub fn name(self) -> &'static str {
        match self {
            EventType::InAlarm => "in-alarm",
            EventType::AlarmCleared => "alarm-cleared",
            EventType::AlarmInvalidated => "alarm-invalidated",
        }
    }
}

/// The MetricValue shape (§2.4) of a measured datapoint: `{"count": n}`, `{"ports": [..]}`,
/// ... Lists sorted and de-duplicated, addresses without prefix length (§6.3).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MetricValue {
    Count(u64),
    Number(f64),
    Ports(Vec<u16>),
    Cidrs(Vec<String>),
    Numbers(Vec<f64>),
    Strings(Vec<String>),
}

impl From<&Datapoint> for MetricValue {
    fn from(d: &Datapoint) -> Self {
        match d {
            Datapoint::Count(n) => MetricValue::Count(*n),
            Datapoint::Number(x) => MetricValue::Number(*x),
            Datapoint::Ports(p) => MetricValue::Ports(p.clone()),
            Datapoint::Addresses(a) => {
                MetricValue::Cidrs(a.iter().map(IpAddr::to_string).collect())
            }
            Datapoint::Numbers(x) => MetricValue::Numbers(x.clone()),
            Datapoint::Strings(s) => MetricValue::Strings(s.clone()),
        }
    }
}

/// One transition. Serialized with serde_json this is the wire event, e.g.
/// `{"violationEventTime":1767225900000,"thingName":"gw-01","securityProfileName":"edge-baseline",
/// "behavior":{..},"violationEventType":"in-alarm","metricValue":{"ports":[22,23]},
/// "violationId":"5f0c…","verificationState":"UNKNOWN","reportId":1767225900000}`.
///
/// `suppressAlerts` (§6.6): suppressed behaviors still produce events (they are recorded);
/// `Event::suppressed()` reads the flag from the behavior object, so a publisher can skip the
/// notification fan-out while a log or store keeps the event.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    /// Epoch milliseconds of the datapoint that caused the event (§6.2).
    pub violation_event_time: u64,
    pub thing_name: String,
    pub security_profile_name: String,
    /// The behavior object as given in the profile (re-serialized; key order not kept).
    pub behavior: serde_json::Value,
    pub violation_event_type: EventType,
    /// Absent on `alarm-invalidated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_value: Option<MetricValue>,
    /// 32 lowercase hex, one per alarm episode.
    pub violation_id: String,
    /// Always "UNKNOWN" here (§6.4: set later by an operator).
    pub verification_state: String,
    /// Ours: `report_id` of the datapoint; absent on `alarm-invalidated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_id: Option<u64>,
    /// ML behaviors only, as AWS: `{"confidenceLevel": "HIGH"}` (detect-rules §5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation_event_additional_info: Option<AdditionalInfo>,
    /// Ours, ML behaviors' `in-alarm` only: why the model alarmed, one line (docs/ml.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

/// AWS's `violationEventAdditionalInfo` of an ML behavior's events.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdditionalInfo {
    pub confidence_level: String,
}

impl AdditionalInfo {
    /// From the behavior object's `criteria.mlDetectionConfig.confidenceLevel`.
    pub fn of(behavior: &serde_json::Value) -> Option<AdditionalInfo> {
        let level = behavior.pointer("/criteria/mlDetectionConfig/confidenceLevel")?;
        Some(AdditionalInfo {
            confidence_level: level.as_str()?.to_string(),
        })
    }
}

impl Event {
    /// The behavior's `suppressAlerts` (absent ⇒ false, §2.2).
    pub fn suppressed(&self) -> bool {
        self.behavior.get("suppressAlerts") == Some(&serde_json::Value::Bool(true))
    }

    /// The behavior's name.
    pub fn behavior_name(&self) -> &str {
        self.behavior
            .get("name")
            .and_then(|v| v.as_str())
            .unwrap_or("")
    }
}

/// "UNKNOWN": the default verification state of every alarm (§6.4).
pub const VERIFICATION_STATE: &str = "UNKNOWN";

/// `violationId`: 128 bits as 32 lowercase hex (§6.2).
pub fn violation_id(bits: u128) -> String {
    format!("{bits:032x}")
}

/// One event of a behavior known by its profile name and JSON (also a saved one, on restore).
pub(super) fn event_of(
    thing: &str,
    profile: &str,
    behavior: &serde_json::Value,
    kind: EventType,
    time_ms: u64,
    cause: Option<(&Datapoint, u64)>,
    violation_id: String,
) -> Event {
    Event {
        violation_event_time: time_ms,
        thing_name: thing.to_string(),
        security_profile_name: profile.to_string(),
        behavior: behavior.clone(),
        violation_event_type: kind,
        metric_value: cause.map(|(dp, _)| MetricValue::from(dp)),
        violation_id,
        verification_state: VERIFICATION_STATE.to_string(),
        report_id: cause.map(|(_, id)| id),
        violation_event_additional_info: AdditionalInfo::of(behavior),
        explanation: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_shape_matches_the_worked_example_event_1() {
        let e = Event {
            violation_event_time: 1767225900000,
            thing_name: "gw-01".into(),
            security_profile_name: "edge-baseline".into(),
            behavior: json!({"name": "no-telnet", "metric": "aws:listening-tcp-ports",
                "criteria": {"comparisonOperator": "not-in-port-set", "value": {"ports": [23, 2323]}}}),
            violation_event_type: EventType::InAlarm,
            metric_value: Some(MetricValue::Ports(vec![22, 23])),
            violation_id: violation_id(0x5f0c1a2b3c4d4e5f8a9b0c1d2e3f4a51),
            verification_state: "UNKNOWN".into(),
            report_id: None,
            violation_event_additional_info: None,
            explanation: None,
        };
        let want = json!({"violationEventTime": 1767225900000u64, "thingName": "gw-01",
            "securityProfileName": "edge-baseline",
            "behavior": {"name": "no-telnet", "metric": "aws:listening-tcp-ports",
                "criteria": {"comparisonOperator": "not-in-port-set", "value": {"ports": [23, 2323]}}},
            "violationEventType": "in-alarm", "metricValue": {"ports": [22, 23]},
            "violationId": "5f0c1a2b3c4d4e5f8a9b0c1d2e3f4a51", "verificationState": "UNKNOWN"});
        assert_eq!(serde_json::to_value(&e).unwrap(), want);
        let back: Event = serde_json::from_value(want).unwrap();
        assert_eq!(back, e);
        assert!(!e.suppressed());
        assert_eq!(e.behavior_name(), "no-telnet");
    }

    #[test]
    fn metric_values_render_as_aws_metric_value_objects() {
        let v = |d: Datapoint| serde_json::to_value(MetricValue::from(&d)).unwrap();
        assert_eq!(v(Datapoint::Count(5)), json!({"count": 5}));
        assert_eq!(v(Datapoint::Number(1.5)), json!({"number": 1.5}));
        assert_eq!(
            v(Datapoint::Addresses(vec![
                "10.1.2.3".parse().unwrap(),
                "2001:db8::1".parse().unwrap()
            ])),
            json!({"cidrs": ["10.1.2.3", "2001:db8::1"]})
        );
        assert_eq!(v(Datapoint::Numbers(vec![1.0])), json!({"numbers": [1.0]}));
        assert_eq!(
            v(Datapoint::Strings(vec!["a".into()])),
            json!({"strings": ["a"]})
        );
        assert_eq!(violation_id(1), "00000000000000000000000000000001");
    }
}
