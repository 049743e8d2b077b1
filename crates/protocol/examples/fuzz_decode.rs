//! A deterministic mutation fuzzer for the report decoder (issue #17 item 6): seeded from
//! valid reports in the four formats, the known hostile shapes and the costliest accepted
//! lists, it checks that nothing panics, that decoding peaks under 24 bytes per input byte and
//! the report_id peek of a refused payload under 1, and prints the worst figures of both.
//!
//! `cargo run -p detect-protocol --release --example fuzz_decode -- [ITERATIONS] [SEED]`
//! (default 2000 iterations, seed 1; `scripts/test` runs a short round, run longer by hand;
//! `FUZZ_DUMP=FILE` writes the input that broke the memory bound).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use fuzz::{Mutator, Rng};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(l.size(), Relaxed) + l.size();
        PEAK.fetch_max(live, Relaxed);
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Peak bytes above the start per input byte (a CBOR list of empty strings: the model's
/// 24-byte `String` per byte), plus this much for any input (error texts).
const PEAK_PER_BYTE: usize = 24;
const PEAK_FIXED: usize = 16 * 1024;
/// The report_id peek of a refused payload keeps nothing but what it returns (JSON text with
/// escapes goes through serde_json's scratch buffer, which may double as it grows).
const PEEK_PER_BYTE: usize = 2;

/// Raw bytes half the time; else JSON's characters and CBOR heads of maps, lists, text, null.
const POOL: &[u8] = b"0123456789-.eE,:[]{}\"\\ nulltrue\xa1\xa2\x81\x9f\xbf\xff\x60\x61\xf6";

const LONG: &str = r#"{"header":{"report_id":1717171717,"version":"1.0"},"metrics":{"listening_tcp_ports":{"ports":[{"port":22,"interface":"eth0"},{"port":80}],"total":2},"listening_udp_ports":{"ports":[{"port":53}]},"tcp_connections":{"established_connections":{"connections":[{"remote_addr":"198.51.100.7:443","local_port":51000,"local_interface":"eth0"}],"total":1}},"network_stats":{"bytes_in":1,"bytes_out":2,"packets_in":3,"packets_out":4}},"custom_metrics":{"cpu":[{"number":1.5}],"mods":[{"string_list":["a","b"]}],"peers":[{"ip_list":["192.0.2.1"]}],"xs":[{"number_list":[1,2]}]}}"#;
const SHORT: &str = r#"{"hed":{"rid":1717171718,"v":"1.0"},"met":{"tp":{"pts":[{"pt":22,"if":"eth0"}],"t":1},"up":{"pts":[]},"tc":{"ec":{"cs":[{"rad":"[2001:db8::1]:443","lp":22}]}},"ns":{"bi":1,"bo":2,"pi":3,"po":4}}}"#;

fn seeds() -> Vec<Vec<u8>> {
    let mut out = vec![];
    for json in [LONG, SHORT] {
        let v: serde_json::Value = serde_json::from_str(json).expect("seed is JSON");
        let mut cbor = vec![];
        ciborium::into_writer(&v, &mut cbor).expect("seed encodes");
        out.extend([json.as_bytes().to_vec(), cbor]);
    }
    let mut bomb = vec![0xa1, 0x60, 0x99, 0x01, 0x05];
    for _ in 0..261 {
        bomb.extend([0xa1, 0x60].repeat(250));
        bomb.push(0xf6);
    }
    let mut long_key = vec![0xa1, 0x7a, 0, 1, 0, 0];
    long_key.extend([b'k'].repeat(1 << 16));
    long_key.extend([0x9a, 0, 1, 0, 0]);
    long_key.extend([0u8].repeat(1 << 16));
    let mut wide = vec![0xa1, 0x60, 0x9a, 0, 0, 0xaa, 0xaa];
    wide.extend([0xa1, 0x60, 0xf6].repeat(0xaaaa));
    out.extend([bomb, long_key, wide]);
    // JSON shapes that cost a generic tree dearly, then the costliest accepted lists.
    out.push([b"[".as_slice(), &b"{},".repeat(43_000), b"{}]"].concat());
    out.push([b"{\"header\":".repeat(10_000), b"1".to_vec()].concat());
    let head = r#"{"hed":{"rid":1,"v":"1.0"},"cmet":{"m":[{"#;
    let list = |key: &str, item: &str, n: usize| {
        format!(
            r#"{head}"{key}":[{item}{}]}}]}}}}"#,
            format!(",{item}").repeat(n)
        )
    };
    out.push(list("string_list", r#""""#, 1 << 15).into_bytes());
    out.push(list("number_list", "0", 1 << 16).into_bytes());
    out.push(list("ip_list", r#""::""#, 1 << 14).into_bytes());
    let short = |key: &str| {
        let mut b = vec![
            0xa2, 0x63, b'h', b'e', b'd', 0xa2, 0x63, b'r', b'i', b'd', 1,
        ];
        b.extend([0x61, b'v', 0x63, b'1', b'.', b'0', 0x60 + key.len() as u8]);
        b.extend(key.as_bytes());
        b
    };
    let mut strings = short("cmet");
    strings.extend([0xa1, 0x61, b'm', 0x81, 0xa1, 0x6b]);
    strings.extend(b"string_list\x9f");
    strings.extend([0x60].repeat(120_000));
    strings.push(0xff);
    let mut ports = short("met");
    ports.extend([0xa1, 0x62, b't', b'p', 0xa1, 0x63, b'p', b't', b's', 0x9f]);
    ports.extend([0xa1, 0x62, b'p', b't', 0x01].repeat(26_000));
    ports.push(0xff);
    out.extend([strings, ports]);
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let mut rng = Rng::new(args.next().and_then(|a| a.parse().ok()).unwrap_or(1));
    let mutator = Mutator {
        pool: POOL,
        edits: 4,
        repeat: 2000,
        max_len: protocol::MAX_PUBLISH_BYTES,
    };
    let seeds = seeds();
    let mut accepted = 0usize;
    // Worst decoding of JSON and of CBOR (by the first byte, as the decoder tells), peek.
    let mut worst: [Worst; 3] = Default::default();
    for i in 0..iterations + seeds.len() {
        let input = match seeds.get(i) {
            Some(s) => s.clone(),
            None => {
                let k = rng.below(seeds.len());
                mutator.mutate(&mut rng, &seeds[k])
            }
        };
        let (peak, us, ok) = measure(|| protocol::decode(&input).is_ok());
        accepted += usize::from(ok);
        let n = input.len();
        if peak > PEAK_PER_BYTE * n + PEAK_FIXED {
            eprintln!("input {i} ({n} bytes): decoding peaked at {peak} bytes, over the bound");
            if let Ok(path) = std::env::var("FUZZ_DUMP") {
                let _ = std::fs::write(path, &input);
            }
            std::process::exit(1);
        }
        let cbor = matches!(input.first(), Some(0xa0..=0xbf));
        worst[usize::from(cbor)].add(n, peak, us);
        if !ok {
            let (peak, us, _) = measure(|| protocol::decode::report_id(&input).is_some());
            if peak > PEEK_PER_BYTE * n + PEAK_FIXED {
                eprintln!("input {i} ({n} bytes): the id peek peaked at {peak} bytes");
                std::process::exit(1);
            }
            worst[2].add(n, peak, us);
        }
    }
    println!(
        "fuzz_decode: {} inputs, {accepted} accepted, none panicked; worst over inputs >= 1 KiB, \
         peak bytes and us per input byte:",
        iterations + seeds.len()
    );
    for (w, what) in worst
        .iter()
        .zip(["decode JSON", "decode CBOR", "report_id peek"])
    {
        println!("  {what}: {:.1} bytes, {:.3} us", w.peak, w.us);
    }
}

/// Runs `f`, returning the peak bytes it held above the start, its microseconds (the least
/// of three runs: a shared machine preempts), its result.
fn measure(f: impl Fn() -> bool) -> (usize, f64, bool) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let t = Instant::now();
    let ok = f();
    let mut us = t.elapsed().as_secs_f64() * 1e6;
    let peak = PEAK.load(Relaxed) - base;
    for _ in 0..2 {
        let t = Instant::now();
        f();
        us = us.min(t.elapsed().as_secs_f64() * 1e6);
    }
    (peak, us, ok)
}

/// The worst peak bytes and microseconds per input byte, over inputs of 1 KiB or more.
#[derive(Default)]
struct Worst {
    peak: f64,
    us: f64,
}

impl Worst {
    fn add(&mut self, n: usize, peak: usize, us: f64) {
        if n >= 1024 {
            self.peak = self.peak.max(peak as f64 / n as f64);
            self.us = self.us.max(us / n as f64);
        }
    }
}
