//! The three functions mosquitto looks up and the five callbacks: each body runs under
//! `catch_unwind` on a `try_lock`ed state, so the broker is never blocked nor unwound into.

use std::ffi::{c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use protocol::broker::BROKER_EVENTS_TOPIC;

use crate::ffi::{self, Opt};
use crate::options::{Options, Verdict};
use crate::outbox::Outbox;
use crate::tracker::Tracker;

mod callbacks;
use callbacks::{on_acl_check, on_basic_auth, on_disconnect, on_message, on_tick};

/// Drops are logged at most this often.
const DROP_LOG_MS: u64 = 10_000;

struct State {
    options: Options,
    tracker: Tracker,
    outbox: Outbox,
    window_from_ms: u64,
    /// The clock as last read; TICK reads it on every pass of the broker's loop.
    now_ms: u64,
    /// A TICK has come: the cached clock is at most one loop pass old.
    ticking: bool,
    dropped_unlogged: u64,
    last_drop_log_ms: u64,
}

/// What `userdata` points to: one per `mosquitto_plugin_init` (one per listener with
/// `per_listener_settings true`).
struct Plugin {
    id: *mut c_void,
    verdict: c_int,
    state: Mutex<State>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

const EVENTS: [(c_int, ffi::Callback); 5] = [
    (ffi::MOSQ_EVT_BASIC_AUTH, on_basic_auth),
    (ffi::MOSQ_EVT_ACL_CHECK, on_acl_check),
    (ffi::MOSQ_EVT_MESSAGE, on_message),
    (ffi::MOSQ_EVT_TICK, on_tick),
    (ffi::MOSQ_EVT_DISCONNECT, on_disconnect),
];

#[unsafe(no_mangle)]
pub extern "C" fn mosquitto_plugin_version(count: c_int, versions: *const c_int) -> c_int {
    let n = usize::try_from(count).unwrap_or(0);
    // SAFETY: mosquitto passes an array of `count` supported versions (or NULL with 0).
    let offered = if versions.is_null() {
        &[][..]
    } else {
        unsafe { std::slice::from_raw_parts(versions, n) }
    };
    if offered.contains(&5) { 5 } else { -1 }
}

#[unsafe(no_mangle)]
pub extern "C" fn mosquitto_plugin_init(
    id: *mut c_void,
    userdata: *mut *mut c_void,
    opts: *mut Opt,
    count: c_int,
) -> c_int {
    catch_unwind(|| init(id, userdata, opts, count)).unwrap_or(ffi::MOSQ_ERR_INVAL)
}

fn init(id: *mut c_void, userdata: *mut *mut c_void, opts: *mut Opt, count: c_int) -> c_int {
    let n = usize::try_from(count).unwrap_or(0);
    // SAFETY: mosquitto passes `count` options (key/value C strings it owns) or NULL.
    let pairs: Vec<(String, String)> = if opts.is_null() {
        Vec::new()
    } else {
        unsafe { std::slice::from_raw_parts(opts, n) }
            .iter()
            // SAFETY: each key and value is NULL or a NUL-terminated string alive for the call.
            .map(|o| unsafe {
                (
                    ffi::text(o.key).unwrap_or_default(),
                    ffi::text(o.value).unwrap_or_default(),
                )
            })
            .collect()
    };
    let options = match Options::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        Ok(o) => o,
        Err(e) => {
            ffi::log(ffi::MOSQ_LOG_ERR, &format!("not loaded: {e}"));
            return ffi::MOSQ_ERR_INVAL;
        }
    };
    let verdict = match options.verdict {
        Verdict::Defer => ffi::MOSQ_ERR_PLUGIN_DEFER,
        Verdict::Allow => ffi::MOSQ_ERR_SUCCESS,
    };
    let outbox = Outbox::new();
    ffi::log(
        ffi::MOSQ_LOG_INFO,
        &format!(
            "instance {} publishing to {BROKER_EVENTS_TOPIC} every {} ms, verdict {:?}, cert_identity {}",
            outbox.instance, options.flush_ms, options.verdict, options.cert_identity
        ),
    );
    let state = State {
        options,
        tracker: Tracker::default(),
        outbox,
        window_from_ms: now_ms(),
        now_ms: now_ms(),
        ticking: false,
        dropped_unlogged: 0,
        last_drop_log_ms: 0,
    };
    let plugin = Box::into_raw(Box::new(Plugin {
        id,
        verdict,
        state: Mutex::new(state),
    }));
    for (event, cb) in EVENTS {
        let rc = ffi::register(id, event, cb, plugin.cast());
        if rc != ffi::MOSQ_ERR_SUCCESS {
            ffi::log(
                ffi::MOSQ_LOG_ERR,
                &format!("not loaded: registering event {event} failed with {rc}"),
            );
            cleanup(plugin.cast());
            return rc;
        }
    }
    if !userdata.is_null() {
        // SAFETY: mosquitto passes a valid slot for the plugin's user data.
        unsafe { *userdata = plugin.cast() };
    }
    ffi::MOSQ_ERR_SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn mosquitto_plugin_cleanup(
    userdata: *mut c_void,
    _opts: *mut Opt,
    _count: c_int,
) -> c_int {
    let _ = catch_unwind(|| cleanup(userdata));
    ffi::MOSQ_ERR_SUCCESS
}

fn cleanup(userdata: *mut c_void) {
    if userdata.is_null() {
        return;
    }
    // SAFETY: `userdata` is the Box made in `init`, handed back once by mosquitto at cleanup.
    let plugin = unsafe { Box::from_raw(userdata.cast::<Plugin>()) };
    for (event, cb) in EVENTS {
        ffi::unregister(plugin.id, event, cb);
    }
    if let Ok(mut s) = plugin.state.lock() {
        flush(&mut s, now_ms());
    }
}

/// Runs `f` on the plugin's state unless the state is busy (a re-entered callback) or a panic
/// escapes it; either way the broker gets `fallback`.
/// Which clock a callback needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Clock {
    /// A fresh reading (TICK, BASIC_AUTH, DISCONNECT).
    Read,
    /// The last reading is good enough while TICKs come (publishes: the broker reads one packet
    /// per client per loop pass, and a TICK ends every pass).
    Cached,
    /// None: deliveries, the most frequent callback, carry no time stamp.
    None,
}

/// The timer flush is checked whenever the clock is known, so also without TICK.
fn with_state(
    userdata: *mut c_void,
    clock: Clock,
    fallback: impl Fn(&Plugin) -> c_int,
    f: impl FnOnce(&Plugin, &mut State, u64) -> c_int,
) -> c_int {
    if userdata.is_null() {
        return ffi::MOSQ_ERR_PLUGIN_DEFER;
    }
    // SAFETY: `userdata` is the Box made in `init`; it lives until cleanup unregisters us.
    let plugin = unsafe { &*userdata.cast::<Plugin>() };
    let run = AssertUnwindSafe(|| {
        let mut state = match plugin.state.try_lock() {
            Ok(s) => s,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return fallback(plugin),
        };
        if clock == Clock::Read || (clock == Clock::Cached && !state.ticking) {
            state.now_ms = now_ms();
        }
        let now = state.now_ms;
        let rc = f(plugin, &mut state, now);
        if clock != Clock::None
            && now.saturating_sub(state.window_from_ms) >= state.options.flush_ms
        {
            flush(&mut state, now);
        } else if state.tracker.is_full() {
            flush(&mut state, now_ms());
        }
        rc
    });
    match catch_unwind(run) {
        Ok(rc) => rc,
        Err(_) => {
            ffi::log(
                ffi::MOSQ_LOG_ERR,
                "a callback panicked; the panic was caught, the broker goes on",
            );
            fallback(plugin)
        }
    }
}

fn flush(s: &mut State, now: u64) {
    let (events, dropped) = s.tracker.drain(s.window_from_ms, now);
    s.window_from_ms = now;
    s.dropped_unlogged += dropped;
    s.outbox.flush(events, dropped, now, &mut |bytes| {
        ffi::publish(BROKER_EVENTS_TOPIC, bytes)
    });
    if s.dropped_unlogged > 0 && now.saturating_sub(s.last_drop_log_ms) >= DROP_LOG_MS {
        let line = format!(
            "dropped {} observations in the last {} s (caps: {} clients, {} topics per client and window)",
            s.dropped_unlogged,
            now.saturating_sub(s.last_drop_log_ms)
                .min(DROP_LOG_MS * 1000)
                / 1000,
            crate::tracker::MAX_CLIENTS,
            crate::traffic::MAX_TOPICS_PER_CLIENT
        );
        ffi::log(ffi::MOSQ_LOG_WARNING, &line);
        s.dropped_unlogged = 0;
        s.last_drop_log_ms = now;
    }
}
