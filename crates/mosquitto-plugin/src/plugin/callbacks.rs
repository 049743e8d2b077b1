//! The five callbacks mosquitto calls: each reads its event struct, asks the tracker, and
//! answers the broker (the verdict, a denial under `$detect/`, or success).

use std::borrow::Cow;
use std::ffi::{c_int, c_void};

use super::{Clock, Plugin, State, with_state};
use crate::ffi::{self, EvtAclCheck, EvtBasicAuth, EvtDisconnect, EvtMessage};
use crate::tracker::Answer;

/// The broker's strings as text: MQTT ids and topics are valid UTF-8 (mosquitto checks), so the
/// fast check almost always borrows; anything else is copied with replacement characters.
fn utf8(b: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}

fn verdict(p: &Plugin) -> c_int {
    p.verdict
}

/// An event the plugin only watches: the broker is answered success, with or without the state.
fn observe(userdata: *mut c_void, clock: Clock, f: impl FnOnce(&mut State, u64)) -> c_int {
    with_state(
        userdata,
        clock,
        |_| ffi::MOSQ_ERR_SUCCESS,
        |_, s, now| {
            f(s, now);
            ffi::MOSQ_ERR_SUCCESS
        },
    )
}

/// An event's topic as text (empty when the broker gives none).
///
/// # Safety
/// `topic` is NULL or a NUL-terminated string alive for the callback.
unsafe fn topic<'a>(topic: *const std::ffi::c_char) -> Cow<'a, str> {
    // SAFETY: per this function's contract.
    unsafe { ffi::bytes(topic) }.map(utf8).unwrap_or_default()
}

pub(super) unsafe extern "C" fn on_basic_auth(
    _ev: c_int,
    data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    with_state(userdata, Clock::Read, verdict, |p, s, now| {
        // SAFETY: for MOSQ_EVT_BASIC_AUTH, event_data is a live mosquitto_evt_basic_auth.
        let ev = unsafe { &*data.cast::<EvtBasicAuth>() };
        let client = ev.client.cast_const();
        let id = ffi::client_id_bytes(client).map(utf8);
        s.tracker.basic_auth(
            ev.client as usize,
            id.as_deref(),
            ffi::client_address(client),
            now,
        );
        if s.options.cert_identity
            && let Some(cn) = ffi::certificate_cn(client)
        {
            // The plugin is the authority for certificate clients, as use_identity_as_username.
            return if ffi::set_username(ev.client, &cn) {
                ffi::MOSQ_ERR_SUCCESS
            } else {
                p.verdict
            };
        }
        p.verdict
    })
}

pub(super) unsafe extern "C" fn on_acl_check(
    _ev: c_int,
    data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    // SAFETY: for MOSQ_EVT_ACL_CHECK, event_data is a live mosquitto_evt_acl_check.
    let ev = unsafe { &*data.cast::<EvtAclCheck>() };
    // SAFETY: the topic is NULL or a NUL-terminated string alive for the callback.
    let topic = unsafe { topic(ev.topic) };
    let write = ev.access == ffi::MOSQ_ACL_WRITE;
    let read = ev.access == ffi::MOSQ_ACL_READ;
    // Even when the state is unavailable, nobody writes under the plugin's topics.
    let fallback = |p: &Plugin| {
        if write && topic.starts_with(crate::tracker::OWN_PREFIX) {
            ffi::MOSQ_ERR_ACL_DENIED
        } else {
            p.verdict
        }
    };
    with_state(
        userdata,
        if read { Clock::None } else { Clock::Cached },
        fallback,
        |p, s, now| {
            let client = ev.client.cast_const();
            let Some(id) = ffi::client_id_bytes(client).map(utf8) else {
                return p.verdict;
            };
            let ip = || ffi::client_address(client);
            match s.tracker.acl(
                ev.client as usize,
                &id,
                ip,
                write,
                read,
                &topic,
                u64::from(ev.payloadlen),
                now,
            ) {
                Answer::Deny => ffi::MOSQ_ERR_ACL_DENIED,
                Answer::Verdict => p.verdict,
            }
        },
    )
}

pub(super) unsafe extern "C" fn on_message(
    _ev: c_int,
    data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    observe(userdata, Clock::Cached, |s, now| {
        // SAFETY: for MOSQ_EVT_MESSAGE, event_data is a live mosquitto_evt_message.
        let ev = unsafe { &*data.cast::<EvtMessage>() };
        let client = ev.client.cast_const();
        // SAFETY: the topic is NULL or a NUL-terminated string alive for the callback.
        let topic = unsafe { topic(ev.topic) };
        if s.options.panic_topic.as_deref() == Some(&*topic) {
            panic!("test_panic_topic {topic}");
        }
        if let Some(id) = ffi::client_id_bytes(client).map(utf8) {
            let ip = || ffi::client_address(client);
            s.tracker.message(
                ev.client as usize,
                &id,
                ip,
                &topic,
                u64::from(ev.payloadlen),
                now,
            );
        }
    })
}

pub(super) unsafe extern "C" fn on_tick(
    _ev: c_int,
    _data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    observe(userdata, Clock::Read, |s, _now| {
        s.ticking = true;
        s.tracker.tick();
    })
}

pub(super) unsafe extern "C" fn on_disconnect(
    _ev: c_int,
    data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    observe(userdata, Clock::Read, |s, now| {
        // SAFETY: for MOSQ_EVT_DISCONNECT, event_data is a live mosquitto_evt_disconnect.
        let ev = unsafe { &*data.cast::<EvtDisconnect>() };
        let client = ev.client.cast_const();
        let id = ffi::client_id_bytes(client).map(utf8);
        s.tracker.disconnect(
            ev.client as usize,
            id.as_deref(),
            || ffi::client_address(client),
            now,
        );
    })
}
