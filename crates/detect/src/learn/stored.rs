//! A model as the engine state carries it (`SavedModel::model`): the model itself while the
//! state stays in memory, its hex text once written or read (`persist`); decoded only when used.

use super::model::Model;
use super::persist::{self, DecodeError, ModelSource};

/// A saved model: as read (hex, not checked yet) or as the engine left it. It serializes as
/// the hex of `persist::to_hex` either way, so files and stores see one format; an engine
/// state that goes from `snapshot` to `restore` in memory (detect-fleet evaluates every report
/// that way) is never encoded or decoded.
#[derive(Debug, Clone)]
pub enum StoredModel {
    Hex(String),
    Model(Box<Model>),
}

impl StoredModel {
    /// The model; for hex, decoded and checked (damage is an error).
    pub fn decode(&self) -> Result<Model, DecodeError> {
        match self {
            StoredModel::Hex(h) => persist::hex_to_model(h),
            StoredModel::Model(m) => Ok((**m).clone()),
        }
    }

    /// As `decode`, without a copy of a model held already.
    pub fn into_model(self) -> Result<Box<Model>, DecodeError> {
        match self {
            StoredModel::Hex(h) => persist::hex_to_model(&h).map(Box::new),
            StoredModel::Model(m) => Ok(m),
        }
    }

    /// The hex text (`persist::to_hex`).
    pub fn to_hex(&self) -> String {
        match self {
            StoredModel::Hex(h) => h.clone(),
            StoredModel::Model(m) => persist::to_hex(m),
        }
    }
}

/// Equal when they hold the same model (hex that does not decode equals only the same text).
impl PartialEq for StoredModel {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (StoredModel::Hex(a), StoredModel::Hex(b)) => a == b,
            (StoredModel::Model(a), StoredModel::Model(b)) => a == b,
            (StoredModel::Hex(h), StoredModel::Model(m))
            | (StoredModel::Model(m), StoredModel::Hex(h)) => {
                persist::hex_to_model(h).is_ok_and(|d| d == **m)
            }
        }
    }
}

impl Eq for StoredModel {}

impl From<String> for StoredModel {
    fn from(hex: String) -> Self {
        StoredModel::Hex(hex)
    }
}

impl From<&str> for StoredModel {
    fn from(hex: &str) -> Self {
        StoredModel::Hex(hex.to_string())
    }
}

impl From<Model> for StoredModel {
    fn from(model: Model) -> Self {
        StoredModel::Model(Box::new(model))
    }
}

impl serde::Serialize for StoredModel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StoredModel::Hex(h) => s.serialize_str(h),
            StoredModel::Model(m) => s.serialize_str(&persist::to_hex(m)),
        }
    }
}

impl<'de> serde::Deserialize<'de> for StoredModel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(StoredModel::Hex)
    }
}

impl ModelSource for StoredModel {
    fn model(&self) -> Result<Model, DecodeError> {
        self.decode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::model::Unit;

    #[test]
    fn held_and_hex_serialize_alike_compare_by_model_and_damage_stays_an_error() {
        let mut m = Model::default();
        for i in 0..400u64 {
            m.observe(
                1_767_225_600_000 + i * 300_000,
                900 + i % 5 * 50,
                Unit::Bytes,
            );
        }
        let held = StoredModel::from(m.clone());
        let hex = StoredModel::from(persist::to_hex(&m));
        let json = serde_json::to_string(&held).unwrap();
        assert_eq!(json, serde_json::to_string(&hex).unwrap());
        let back: StoredModel = serde_json::from_str(&json).unwrap();
        assert!(matches!(back, StoredModel::Hex(_)));
        assert_eq!(back, held);
        assert_eq!(held, hex);
        assert_eq!(persist::from_hex(&held), Ok(m.clone()));
        assert_eq!(*hex.clone().into_model().unwrap(), m);
        let mut other = m.clone();
        other.seen += 1;
        assert_ne!(held, StoredModel::from(other));
        let bad = StoredModel::from("zz");
        assert_ne!(bad, held);
        assert_eq!(bad, StoredModel::from("zz"));
        assert!(bad.decode().is_err() && persist::from_hex(&bad).is_err());
    }
}
