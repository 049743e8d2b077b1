//! The mosquitto 2.0 plugin ABI (v5), written by hand from Debian 12's mosquitto_broker.h and
//! mosquitto_plugin.h: event structs, constants, the broker's and OpenSSL's functions, safe wrappers.

use std::ffi::{CStr, CString, c_char, c_int, c_void};

pub const MOSQ_ERR_SUCCESS: c_int = 0;
pub const MOSQ_ERR_INVAL: c_int = 3;
pub const MOSQ_ERR_ACL_DENIED: c_int = 12;
pub const MOSQ_ERR_PLUGIN_DEFER: c_int = 17;

pub const MOSQ_EVT_ACL_CHECK: c_int = 2;
pub const MOSQ_EVT_BASIC_AUTH: c_int = 3;
pub const MOSQ_EVT_MESSAGE: c_int = 7;
pub const MOSQ_EVT_TICK: c_int = 9;
pub const MOSQ_EVT_DISCONNECT: c_int = 10;

pub const MOSQ_ACL_READ: c_int = 0x01;
pub const MOSQ_ACL_WRITE: c_int = 0x02;

pub const MOSQ_LOG_INFO: c_int = 0x01;
pub const MOSQ_LOG_WARNING: c_int = 0x04;
pub const MOSQ_LOG_ERR: c_int = 0x08;

/// `struct mosquitto_opt`: one `plugin_opt_KEY VALUE` line.
#[repr(C)]
pub struct Opt {
    pub key: *mut c_char,
    pub value: *mut c_char,
}

/// `struct mosquitto_evt_acl_check`.
#[repr(C)]
pub struct EvtAclCheck {
    pub future: *mut c_void,
    pub client: *mut c_void,
    pub topic: *const c_char,
    pub payload: *const c_void,
    pub properties: *mut c_void,
    pub access: c_int,
    pub payloadlen: u32,
    pub qos: u8,
    pub retain: bool,
    pub future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_basic_auth`. The password is never read.
#[repr(C)]
pub struct EvtBasicAuth {
    pub future: *mut c_void,
    pub client: *mut c_void,
    pub username: *mut c_char,
    pub password: *mut c_char,
    pub future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_message`.
#[repr(C)]
pub struct EvtMessage {
    pub future: *mut c_void,
    pub client: *mut c_void,
    pub topic: *mut c_char,
    pub payload: *mut c_void,
    pub properties: *mut c_void,
    pub reason_string: *mut c_char,
    pub payloadlen: u32,
    pub qos: u8,
    pub reason_code: u8,
    pub retain: bool,
    pub future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_disconnect` (`reason` is always -1 in 2.0).
#[repr(C)]
pub struct EvtDisconnect {
    pub future: *mut c_void,
    pub client: *mut c_void,
    pub reason: c_int,
    pub future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_tick` (never read: its times are 0 in 2.0.11; kept for the layout test).
#[cfg(test)]
#[repr(C)]
pub struct EvtTick {
    pub future: *mut c_void,
    pub now_ns: std::ffi::c_long,
    pub next_ns: std::ffi::c_long,
    pub now_s: std::ffi::c_long,
    pub next_s: std::ffi::c_long,
    pub future2: [*mut c_void; 4],
}

/// `MOSQ_FUNC_generic_callback`.
pub type Callback = unsafe extern "C" fn(c_int, *mut c_void, *mut c_void) -> c_int;

// The broker's functions are exported by the mosquitto executable and OpenSSL's by the libcrypto
// it links; both resolve when mosquitto dlopens the plugin. Test binaries have no broker to
// resolve them against, so the declarations (and their callers) are left out of them.
#[cfg(not(test))]
unsafe extern "C" {
    fn mosquitto_callback_register(
        id: *mut c_void,
        event: c_int,
        cb: Callback,
        event_data: *const c_void,
        userdata: *mut c_void,
    ) -> c_int;
    fn mosquitto_callback_unregister(
        id: *mut c_void,
        event: c_int,
        cb: Callback,
        event_data: *const c_void,
    ) -> c_int;
    fn mosquitto_log_printf(level: c_int, fmt: *const c_char, ...);
    fn mosquitto_client_address(client: *const c_void) -> *const c_char;
    fn mosquitto_client_id(client: *const c_void) -> *const c_char;
    fn mosquitto_client_certificate(client: *const c_void) -> *mut c_void;
    fn mosquitto_set_username(client: *mut c_void, username: *const c_char) -> c_int;
    fn mosquitto_broker_publish_copy(
        clientid: *const c_char,
        topic: *const c_char,
        payloadlen: c_int,
        payload: *const c_void,
        qos: c_int,
        retain: bool,
        properties: *mut c_void,
    ) -> c_int;
    fn X509_free(x: *mut c_void);
    fn X509_get_subject_name(x: *const c_void) -> *mut c_void;
    fn X509_NAME_get_index_by_NID(name: *mut c_void, nid: c_int, lastpos: c_int) -> c_int;
    fn X509_NAME_get_entry(name: *const c_void, loc: c_int) -> *mut c_void;
    fn X509_NAME_ENTRY_get_data(entry: *const c_void) -> *mut c_void;
    fn ASN1_STRING_get0_data(s: *const c_void) -> *const u8;
    fn ASN1_STRING_length(s: *const c_void) -> c_int;
}

/// OpenSSL's `NID_commonName`.
#[cfg(not(test))]
const NID_COMMON_NAME: c_int = 13;

/// Copies a C string the broker owns; `None` for NULL. Invalid UTF-8 is replaced, not refused.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string alive for the call.
pub unsafe fn text(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    let s = unsafe { CStr::from_ptr(p) };
    Some(s.to_string_lossy().into_owned())
}

/// Borrows a C string the broker owns as bytes (no copy); `None` for NULL.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives `'a`.
pub unsafe fn bytes<'a>(p: *const c_char) -> Option<&'a [u8]> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    Some(unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// Writes one line to the broker's log (`%s`, so the text is never a format string).
#[cfg(not(test))]
pub fn log(level: c_int, line: &str) {
    let line = CString::new(line.replace('\0', " ")).unwrap_or_default();
    // SAFETY: both pointers are valid NUL-terminated strings for the call; "%s" takes one.
    unsafe { mosquitto_log_printf(level, c"detect-fleet plugin: %s".as_ptr(), line.as_ptr()) }
}

#[cfg(test)]
pub fn log(_level: c_int, line: &str) {
    eprintln!("log: {line}");
}

/// The client's IP address (no port), `""` when the broker has none.
#[cfg(not(test))]
pub fn client_address(client: *const c_void) -> String {
    // SAFETY: `client` is the live client pointer of the current event; the broker owns the
    // returned string for the call.
    unsafe { text(mosquitto_client_address(client)) }.unwrap_or_default()
}

/// The client's id; `None` before CONNECT and after a refused one.
#[cfg(not(test))]
pub fn client_id_bytes<'a>(client: *const c_void) -> Option<&'a [u8]> {
    // SAFETY: `client` is the live client pointer of the current event; the id lives as long
    // as the client, longer than the callback the caller is in.
    unsafe { bytes(mosquitto_client_id(client)) }
}

/// Publishes `payload` on `topic` at QoS 1, not retained, to every subscriber; false when the
/// broker refused it.
#[cfg(not(test))]
pub fn publish(topic: &str, payload: &[u8]) -> bool {
    let (Ok(topic), Ok(len)) = (CString::new(topic), c_int::try_from(payload.len())) else {
        return false;
    };
    // SAFETY: topic is NUL-terminated, payload valid for len bytes; the broker copies both
    // (publish_copy) and takes no ownership; NULL client id = all subscribers, no properties.
    let rc = unsafe {
        mosquitto_broker_publish_copy(
            std::ptr::null(),
            topic.as_ptr(),
            len,
            payload.as_ptr().cast(),
            1,
            false,
            std::ptr::null_mut(),
        )
    };
    rc == MOSQ_ERR_SUCCESS
}

/// The common name of the client's TLS certificate, `None` without a certificate or CN.
#[cfg(not(test))]
pub fn certificate_cn(client: *const c_void) -> Option<String> {
    // SAFETY: `client` is the live client of the current event; the broker returns a new
    // reference to the peer X509 (or NULL) that this function frees below.
    let cert = unsafe { mosquitto_client_certificate(client) };
    if cert.is_null() {
        return None;
    }
    // SAFETY: `cert` is a valid X509 until X509_free; the name, entry and ASN1 string are
    // internal pointers into it, read (copied) before the free.
    let cn = unsafe {
        let name = X509_get_subject_name(cert);
        let at = if name.is_null() {
            -1
        } else {
            X509_NAME_get_index_by_NID(name, NID_COMMON_NAME, -1)
        };
        let entry = if at < 0 {
            std::ptr::null_mut()
        } else {
            X509_NAME_get_entry(name, at)
        };
        let data = if entry.is_null() {
            std::ptr::null_mut()
        } else {
            X509_NAME_ENTRY_get_data(entry)
        };
        let (p, n) = if data.is_null() {
            (std::ptr::null(), 0)
        } else {
            (ASN1_STRING_get0_data(data), ASN1_STRING_length(data))
        };
        let cn = match usize::try_from(n) {
            Ok(n) if !p.is_null() && n > 0 => {
                Some(String::from_utf8_lossy(std::slice::from_raw_parts(p, n)).into_owned())
            }
            _ => None,
        };
        X509_free(cert);
        cn
    };
    cn.filter(|cn| !cn.contains('\0'))
}

/// Makes `username` the client's user name (the broker copies it); false when refused.
#[cfg(not(test))]
pub fn set_username(client: *mut c_void, username: &str) -> bool {
    let Ok(name) = CString::new(username) else {
        return false;
    };
    // SAFETY: `client` is the live client of the current event; the broker copies the string.
    unsafe { mosquitto_set_username(client, name.as_ptr()) == MOSQ_ERR_SUCCESS }
}

/// Registers `cb` for `event`, with `userdata` handed back on every call.
#[cfg(not(test))]
pub fn register(id: *mut c_void, event: c_int, cb: Callback, userdata: *mut c_void) -> c_int {
    // SAFETY: `id` is the identifier mosquitto gave plugin_init; `cb` has the generic signature.
    unsafe { mosquitto_callback_register(id, event, cb, std::ptr::null(), userdata) }
}

/// Undoes `register`.
#[cfg(not(test))]
pub fn unregister(id: *mut c_void, event: c_int, cb: Callback) {
    // SAFETY: as for `register`; unregistering an unknown callback only returns an error.
    unsafe {
        mosquitto_callback_unregister(id, event, cb, std::ptr::null());
    }
}

#[cfg(test)]
#[path = "ffi_tests.rs"]
mod tests;
