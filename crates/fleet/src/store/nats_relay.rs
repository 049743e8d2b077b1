//! The relay of a commit on the cluster store: the effects a record carries (answers, outbox
//! events, violation changes, sample values) applied to the other buckets, each step safe to repeat.

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv;
use detect::EventType;

use super::nats::{Js, backend};
use super::nats_kv::{self, Answer, Noted, Stored, Window, enc, to_bytes};
use super::{StoreError, Violation};

/// Applies `stored.relay` and marks the record relayed; the record's new revision, or `None`
/// when it changed meanwhile (whoever changed it relays from then on).
pub(super) async fn relay(
    js: &Js,
    thing: &str,
    revision: u64,
    stored: &Stored,
) -> Result<Option<u64>, StoreError> {
    apply(js, thing, stored).await?;
    let mut marked = stored.clone();
    marked.relayed = true;
    let key = enc(thing);
    match js.records.update(&key, to_bytes(&marked), revision).await {
        Ok(rev) => Ok(Some(rev)),
        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
        Err(e) => Err(backend(&format!("bucket {} key {key}", js.records.name), e)),
    }
}

/// Applies `stored.relay` without marking the record: for a commit without events, whose
/// relay, applied again by a later reader, writes the same values (docs/fleet.md "Cluster
/// store"). Saves a write of the record per quiet report.
pub(super) async fn apply(js: &Js, thing: &str, stored: &Stored) -> Result<(), StoreError> {
    let r = &stored.relay;
    // Independent buckets, so the four go out together; events stay in their order (the
    // outbox's positions), as do a violation's changes.
    let answers = async {
        for a in &r.answers {
            answer(js, a).await?;
        }
        Ok::<_, StoreError>(())
    };
    let events = async {
        for n in &r.events {
            outbox_append(js, n).await?;
        }
        Ok(())
    };
    let samples = async {
        for w in &r.samples {
            let key = sample_key(w, thing);
            let what = format!("bucket {} key {key}", js.samples.name);
            js.samples
                .put(&key, to_bytes(&w.value))
                .await
                .map_err(|e| backend(&what, e))?;
        }
        Ok(())
    };
    tokio::try_join!(
        answers,
        events,
        violations(js, &r.events, &r.touched),
        samples
    )?;
    Ok(())
}

/// One stored answer: an accepted one goes in as it is (the judge commits none for an id
/// accepted before, so it replaces at most a rejection, or itself on a repeated relay); a
/// rejection must not replace an accepted answer.
async fn answer(js: &Js, a: &Answer) -> Result<(), StoreError> {
    let key = format!("{}.{}", enc(&a.thing), a.report_id);
    let what = format!("bucket {} key {key}", js.answers.name);
    let kept = match a.accepted {
        true => None,
        false => js.answers.get(&key).await.map_err(|e| backend(&what, e))?,
    };
    let kept = kept.and_then(|b| serde_json::from_slice::<Answer>(&b).ok());
    if !kept.is_some_and(|k| k.accepted) {
        js.answers
            .put(&key, to_bytes(a))
            .await
            .map_err(|e| backend(&what, e))?;
    }
    Ok(())
}

pub(super) fn sample_key(w: &Window, thing: &str) -> String {
    let (p, b) = (enc(&w.profile), enc(&w.behavior));
    format!("{p}.{b}.{}.{}", w.start_ms, enc(thing))
}

/// Appends one event unless its key (`{violationId}:{type}`) is on the outbox already: the
/// subject carries the key and the server refuses a second message on it.
pub(super) async fn outbox_append(js: &Js, n: &Noted) -> Result<(), StoreError> {
    let subject = format!(
        "{}.{}",
        super::nats::names::OUTBOX_SUBJECT,
        enc(&n.recorded().key())
    );
    let what = format!("stream {} subject {subject}", super::nats::names::OUTBOX);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Expected-Last-Subject-Sequence", "0");
    if n.suppressed {
        headers.insert("Detect-Suppressed", "true");
    }
    let payload = nats_kv::to_bytes(&n.event);
    let ack = js
        .context
        .publish_with_headers(subject, headers, payload)
        .await
        .map_err(|e| backend(&what, e))?;
    match ack.await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(()),
        Err(e) => Err(backend(&what, e)),
    }
}

/// The violation index from a commit's events and touched alarms (as the memory store does).
async fn violations(
    js: &Js,
    events: &[Noted],
    touched: &[(String, u64)],
) -> Result<(), StoreError> {
    let kv = &js.violations;
    for Noted {
        event: e,
        suppressed,
    } in events
    {
        if e.violation_event_type != EventType::InAlarm {
            continue;
        }
        let v = Violation::opened(e, *suppressed);
        let key = enc(&e.violation_id);
        match kv.create(&key, to_bytes(&v)).await {
            Ok(_) => {}
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(err) => return Err(backend(&format!("bucket {} key {key}", kv.name), err)),
        }
    }
    for (id, last) in touched {
        nats_kv::modify::<Violation, _>(kv, &enc(id), |old| {
            let mut v = old.filter(|v| v.violation_end_time.is_none())?;
            (v.last_violation_time != *last).then(|| {
                v.last_violation_time = *last;
                v
            })
        })
        .await?;
    }
    for Noted { event: e, .. } in events {
        if e.violation_event_type == EventType::InAlarm {
            continue;
        }
        nats_kv::modify::<Violation, _>(kv, &enc(&e.violation_id), |old| {
            let mut v = old?;
            v.violation_end_time = Some(e.violation_event_time);
            v.end_event_type = Some(e.violation_event_type.name().into());
            Some(v)
        })
        .await?;
    }
    Ok(())
}
