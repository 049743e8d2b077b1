//! The hand-written layouts checked against the installed headers: a C program compiled with the
//! system `cc` prints sizeof/offsetof of each struct, compared with Rust's `size_of`/`offset_of`.

use std::mem::{offset_of, size_of};
use std::process::Command;

use super::*;

const HEADER: &str = "/usr/include/mosquitto_broker.h";

fn c_layouts() -> String {
    assert!(
        std::path::Path::new(HEADER).is_file(),
        "{HEADER} missing: apt-get install -y mosquitto-dev"
    );
    let dir = std::env::temp_dir().join(format!("mosq-abi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.c");
    let mut c = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <mosquitto_broker.h>\n\
         #include <mosquitto_plugin.h>\n#define F(s, f) printf(#s \".\" #f \" %zu\\n\", offsetof(struct s, f));\n\
         #define S(s) printf(#s \" %zu\\n\", sizeof(struct s));\nint main(void) {\n",
    );
    for (s, fields) in FIELDS {
        c.push_str(&format!("S({s})\n"));
        for f in *fields {
            c.push_str(&format!("F({s}, {f})\n"));
        }
    }
    c.push_str(
        "printf(\"MOSQ_ACL_READ %d\\nMOSQ_ACL_WRITE %d\\n\", MOSQ_ACL_READ, MOSQ_ACL_WRITE);\n",
    );
    c.push_str("printf(\"MOSQ_EVT_TICK %d\\nMOSQ_EVT_DISCONNECT %d\\n\", MOSQ_EVT_TICK, MOSQ_EVT_DISCONNECT);\nreturn 0; }\n");
    std::fs::write(&src, c).unwrap();
    let exe = dir.join("layout");
    let out = Command::new("cc")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(out.stdout).unwrap()
}

const FIELDS: &[(&str, &[&str])] = &[
    ("mosquitto_opt", &["key", "value"]),
    (
        "mosquitto_evt_acl_check",
        &[
            "client",
            "topic",
            "payload",
            "properties",
            "access",
            "payloadlen",
            "qos",
            "retain",
            "future2",
        ],
    ),
    (
        "mosquitto_evt_basic_auth",
        &["client", "username", "password", "future2"],
    ),
    (
        "mosquitto_evt_message",
        &[
            "client",
            "topic",
            "payload",
            "properties",
            "reason_string",
            "payloadlen",
            "qos",
            "reason_code",
            "retain",
            "future2",
        ],
    ),
    ("mosquitto_evt_disconnect", &["client", "reason", "future2"]),
    (
        "mosquitto_evt_tick",
        &["now_ns", "next_ns", "now_s", "next_s", "future2"],
    ),
];

fn rust_layouts() -> String {
    let mut out = String::new();
    macro_rules! s {
        ($c:literal, $t:ty, [$($f:ident),*]) => {
            out.push_str(&format!("{} {}\n", $c, size_of::<$t>()));
            $(out.push_str(&format!("{}.{} {}\n", $c, stringify!($f), offset_of!($t, $f)));)*
        };
    }
    s!("mosquitto_opt", Opt, [key, value]);
    s!(
        "mosquitto_evt_acl_check",
        EvtAclCheck,
        [
            client, topic, payload, properties, access, payloadlen, qos, retain, future2
        ]
    );
    s!(
        "mosquitto_evt_basic_auth",
        EvtBasicAuth,
        [client, username, password, future2]
    );
    s!(
        "mosquitto_evt_message",
        EvtMessage,
        [
            client,
            topic,
            payload,
            properties,
            reason_string,
            payloadlen,
            qos,
            reason_code,
            retain,
            future2
        ]
    );
    s!(
        "mosquitto_evt_disconnect",
        EvtDisconnect,
        [client, reason, future2]
    );
    s!(
        "mosquitto_evt_tick",
        EvtTick,
        [now_ns, next_ns, now_s, next_s, future2]
    );
    out.push_str(&format!(
        "MOSQ_ACL_READ {MOSQ_ACL_READ}\nMOSQ_ACL_WRITE {MOSQ_ACL_WRITE}\n"
    ));
    out.push_str(&format!(
        "MOSQ_EVT_TICK {MOSQ_EVT_TICK}\nMOSQ_EVT_DISCONNECT {MOSQ_EVT_DISCONNECT}\n"
    ));
    out
}

#[test]
fn the_rust_structs_match_the_installed_mosquitto_headers() {
    assert_eq!(rust_layouts(), c_layouts());
}

#[test]
fn null_strings_read_as_none_and_invalid_utf8_is_replaced() {
    // SAFETY: NULL is allowed; the literal is NUL-terminated and static.
    unsafe {
        assert_eq!(text(std::ptr::null()), None);
        assert_eq!(text(c"a\xffb".as_ptr()).as_deref(), Some("a\u{fffd}b"));
        assert_eq!(bytes(c"t/1".as_ptr()), Some(&b"t/1"[..]));
    }
}
