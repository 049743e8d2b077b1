//! The cluster store's outbox (a stream read from a cursor per sink), samples, registry,
//! rejections, violation index and source cursors, over the buckets of `nats.rs`.

use std::collections::{BTreeMap, BTreeSet};

use async_nats::jetstream::consumer::DeliverPolicy;
use serde::{Deserialize, Serialize};

use super::nats::{Nats, backend, names};
use super::nats_kv::{self, Noted, Read, Stored, dec, enc, from_bytes, to_bytes};
use super::nats_relay::outbox_append;
use super::{
    Filter, LastRejection, Outbox, Pending, Registry, Samples, Sink, SourceCursors, StoreError,
    Thing, Violation, ViolationIndex,
};

fn sink_key(sink: Sink) -> &'static str {
    match sink {
        Sink::Mqtt => "sink.mqtt",
        Sink::Webhook => "sink.webhook",
    }
}

#[derive(Serialize, Deserialize)]
struct Groups {
    groups: BTreeSet<String>,
}

#[derive(Serialize, Deserialize)]
struct SourceAt {
    instance: String,
    seq: u64,
}

pub(super) fn suppressed(r: &Read) -> bool {
    let h = r.headers.as_ref().and_then(|h| h.get("Detect-Suppressed"));
    h.is_some_and(|v| v.as_str() == "true")
}

/// The cursor (last position sent) of `sink`, 0 before the first ack.
pub(super) async fn cursor_of(js: &super::nats::Js, sink: Sink) -> Result<u64, StoreError> {
    let what = format!("bucket {} key {}", js.cursors.name, sink_key(sink));
    let got = js
        .cursors
        .get(sink_key(sink))
        .await
        .map_err(|e| backend(&what, e))?;
    got.map_or(Ok(0), |b| from_bytes(&what, &b))
}

impl Outbox for Nats {
    fn append(&mut self, events: &[super::Recorded]) -> Result<(), StoreError> {
        self.settle_for_read();
        let (js, events): (_, Vec<Noted>) =
            (self.js.clone(), events.iter().map(Noted::of).collect());
        self.bridge
            .run(&format!("stream {}", names::OUTBOX), async move {
                for n in &events {
                    outbox_append(&js, n).await?;
                }
                Ok(())
            })
    }

    fn pending(&mut self, sink: Sink, limit: usize) -> Result<Vec<Pending>, StoreError> {
        self.settle_for_read();
        let js = self.js.clone();
        let what = format!("stream {}", names::OUTBOX);
        self.bridge.run(&what.clone(), async move {
            let after = cursor_of(&js, sink).await?;
            // Polled twice a second: one info request when nothing is new, not a consumer.
            let mut outbox = js.outbox.clone();
            let last = outbox.info().await.map_err(|e| backend(&what, e))?;
            if last.state.last_sequence <= after {
                return Ok(Vec::new());
            }
            let from = DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            };
            let prefix = format!("{}.", names::OUTBOX_SUBJECT);
            let reads = nats_kv::scan(&js.outbox, &js.client, &prefix, "*", from, limit, |r| {
                !suppressed(r)
            })
            .await?;
            reads
                .into_iter()
                .map(|r| {
                    let event = from_bytes(&format!("{what} position {}", r.seq), &r.payload)?;
                    Ok(Pending {
                        position: r.seq,
                        event,
                        payload: r.payload.to_vec(),
                    })
                })
                .collect()
        })
    }

    fn ack(&mut self, sink: Sink, position: u64) -> Result<(), StoreError> {
        let js = self.js.clone();
        let what = format!("bucket {} key {}", js.cursors.name, sink_key(sink));
        self.bridge.run(&what, async move {
            nats_kv::modify::<u64, _>(&js.cursors, sink_key(sink), |old| {
                (old.unwrap_or(0) < position).then_some(position)
            })
            .await
            .map(|_| ())
        })
    }
}

impl Samples for Nats {
    fn window(
        &mut self,
        profile: &str,
        behavior: &str,
        window_start_ms: u64,
    ) -> Result<Vec<f64>, StoreError> {
        self.settle_for_read();
        let js = self.js.clone();
        let pattern = format!("{}.{}.{window_start_ms}.*", enc(profile), enc(behavior));
        let what = format!("bucket {} keys {pattern}", js.samples.name);
        self.bridge.run(&what.clone(), async move {
            let reads = nats_kv::values(&js.samples, &js.client, &pattern).await?;
            reads
                .iter()
                .map(|r| from_bytes(&what, &r.payload))
                .collect()
        })
    }
}

impl Registry for Nats {
    fn things(&mut self) -> Result<Vec<Thing>, StoreError> {
        self.settle_for_read();
        let js = self.js.clone();
        self.bridge.run("buckets of things", async move {
            let mut things: BTreeMap<String, Thing> = BTreeMap::new();
            fn entry<'a>(things: &'a mut BTreeMap<String, Thing>, key: &str) -> &'a mut Thing {
                let name = dec(key).unwrap_or_else(|| key.to_string());
                things.entry(name.clone()).or_insert_with(|| Thing {
                    name,
                    registered: false,
                    groups: BTreeSet::new(),
                    last_report_id: None,
                    last_report_ms: None,
                    last_rejection: None,
                })
            }
            let what = |b: &str, k: &str| format!("bucket {b} key {k}");
            for r in nats_kv::values(&js.records, &js.client, ">").await? {
                let s: Stored = from_bytes(&what(names::RECORDS, &r.key), &r.payload)?;
                let t = entry(&mut things, &r.key);
                t.last_report_id = s.last_report.map(|(id, _)| id);
                t.last_report_ms = s.last_report.map(|(_, ms)| ms);
            }
            for r in nats_kv::values(&js.registry, &js.client, ">").await? {
                let g: Groups = from_bytes(&what(names::REGISTRY, &r.key), &r.payload)?;
                let t = entry(&mut things, &r.key);
                (t.registered, t.groups) = (true, g.groups);
            }
            for r in nats_kv::values(&js.rejections, &js.client, ">").await? {
                let x = from_bytes(&what(names::REJECTIONS, &r.key), &r.payload)?;
                entry(&mut things, &r.key).last_rejection = Some(x);
            }
            Ok(things.into_values().collect())
        })
    }

    /// Scans the registry bucket only when it changed since the last call (its stream's last
    /// sequence, one request to the stream leader), and then only that bucket, not `things`'s
    /// three. The service asks every 2 s; during a nats-server outage each scan may wait for
    /// a consumer placed on the dead server (nats_kv::scan), holding up the reports.
    fn registered(&mut self) -> Result<BTreeMap<String, BTreeSet<String>>, StoreError> {
        let js = self.js.clone();
        let known = self.registered.as_ref().map(|(seq, _)| *seq);
        let what = format!("bucket {}", names::REGISTRY);
        let (last, read) = self.bridge.run(&what.clone(), async move {
            let info = js.registry.stream.get_info().await;
            let last = info.map_err(|e| backend(&what, e))?.state.last_sequence;
            if known == Some(last) {
                return Ok((last, None));
            }
            let mut out = BTreeMap::new();
            for r in nats_kv::values(&js.registry, &js.client, ">").await? {
                let what = format!("bucket {} key {}", names::REGISTRY, r.key);
                let g: Groups = from_bytes(&what, &r.payload)?;
                out.insert(dec(&r.key).unwrap_or(r.key), g.groups);
            }
            Ok((last, Some(out)))
        })?;
        match (read, &self.registered) {
            (Some(now), _) => {
                self.registered = Some((last, now.clone()));
                Ok(now)
            }
            (None, Some((_, kept))) => Ok(kept.clone()),
            (None, None) => Ok(BTreeMap::new()),
        }
    }

    fn register(&mut self, name: &str, groups: &BTreeSet<String>) -> Result<(), StoreError> {
        let (js, key) = (self.js.clone(), enc(name));
        let value = to_bytes(&Groups {
            groups: groups.clone(),
        });
        let what = format!("bucket {} key {key}", names::REGISTRY);
        self.bridge.run(&what.clone(), async move {
            js.registry
                .put(&key, value)
                .await
                .map_err(|e| backend(&what, e))?;
            Ok(())
        })
    }

    fn note_rejection(&mut self, thing: &str, r: &LastRejection) -> Result<(), StoreError> {
        let (js, key, value) = (self.js.clone(), enc(thing), to_bytes(r));
        let what = format!("bucket {} key {key}", names::REJECTIONS);
        self.bridge.run(&what.clone(), async move {
            js.rejections
                .put(&key, value)
                .await
                .map_err(|e| backend(&what, e))?;
            Ok(())
        })
    }
}

impl ViolationIndex for Nats {
    fn violations(&mut self, f: &Filter) -> Result<Vec<Violation>, StoreError> {
        self.settle_for_read();
        let js = self.js.clone();
        let what = format!("bucket {}", names::VIOLATIONS);
        let mut list: Vec<Violation> = self.bridge.run(&what.clone(), async move {
            let reads = nats_kv::values(&js.violations, &js.client, ">").await?;
            reads
                .iter()
                .map(|r| from_bytes(&format!("{what} key {}", r.key), &r.payload))
                .collect()
        })?;
        list.retain(|v| f.matches(v));
        super::sort_violations(&mut list);
        Ok(list)
    }

    fn verify(
        &mut self,
        violation_id: &str,
        state: &str,
        description: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.settle_for_read();
        let (js, key) = (self.js.clone(), enc(violation_id));
        let (state, description) = (state.to_string(), description.map(str::to_string));
        let what = format!("bucket {} key {key}", names::VIOLATIONS);
        self.bridge.run(&what, async move {
            nats_kv::modify::<Violation, _>(&js.violations, &key, |old| {
                let mut v = old?;
                v.verification_state = state.clone();
                v.verification_state_description = description.clone();
                Some(v)
            })
            .await
        })
    }
}

impl SourceCursors for Nats {
    fn cursor(&mut self, source: &str) -> Result<Option<(String, u64)>, StoreError> {
        let (js, key) = (self.js.clone(), format!("source.{}", enc(source)));
        let what = format!("bucket {} key {key}", names::CURSORS);
        self.bridge.run(&what.clone(), async move {
            let got = js.cursors.get(&key).await.map_err(|e| backend(&what, e))?;
            let at = got.map(|b| from_bytes::<SourceAt>(&what, &b)).transpose()?;
            Ok(at.map(|a| (a.instance, a.seq)))
        })
    }

    fn set_cursor(&mut self, source: &str, instance: &str, seq: u64) -> Result<(), StoreError> {
        let (js, key) = (self.js.clone(), format!("source.{}", enc(source)));
        let value = to_bytes(&SourceAt {
            instance: instance.to_string(),
            seq,
        });
        let what = format!("bucket {} key {key}", names::CURSORS);
        self.bridge.run(&what.clone(), async move {
            js.cursors
                .put(&key, value)
                .await
                .map_err(|e| backend(&what, e))?;
            Ok(())
        })
    }
}
