//! A deterministic mutation fuzzer for the report decoder (issue #17 item 6): seeded from
//! valid reports in the four formats and the known hostile shapes, it checks that nothing
//! panics and that peak memory stays linear in the input, and prints the worst figures.
//!
//! `cargo run -p detect-protocol --release --example fuzz_decode -- [ITERATIONS] [SEED]`
//! (default 2000 iterations, seed 1; `scripts/test` runs a short round, run longer by hand).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

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

/// Peak bytes above the start per input byte, plus this much for any input (error texts).
const PEAK_PER_BYTE: usize = 300;
const PEAK_FIXED: usize = 16 * 1024;

const LONG: &str = r#"{"header":{"report_id":1717171717,"version":"1.0"},"metrics":{"listening_tcp_ports":{"ports":[{"port":22,"interface":"eth0"},{"port":80}],"total":2},"listening_udp_ports":{"ports":[{"port":53}]},"tcp_connections":{"established_connections":{"connections":[{"remote_addr":"198.51.100.7:443","local_port":51000,"local_interface":"eth0"}],"total":1}},"network_stats":{"bytes_in":1,"bytes_out":2,"packets_in":3,"packets_out":4}},"custom_metrics":{"cpu":[{"number":1.5}],"mods":[{"string_list":["a","b"]}],"peers":[{"ip_list":["192.0.2.1"]}],"xs":[{"number_list":[1,2]}]}}"#;
const SHORT: &str = r#"{"hed":{"rid":1717171718,"v":"1.0"},"met":{"tp":{"pts":[{"pt":22,"if":"eth0"}],"t":1},"up":{"pts":[]},"tc":{"ec":{"cs":[{"rad":"[2001:db8::1]:443","lp":22}]}},"ns":{"bi":1,"bo":2,"pi":3,"po":4}}}"#;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

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
    out
}

fn mutate(r: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + r.below(4) {
        let at = r.below(b.len());
        match r.below(6) {
            0 if !b.is_empty() => b[at] ^= 1 << r.below(8),
            1 => b.insert(at, r.next() as u8),
            2 if !b.is_empty() => {
                b.remove(at);
            }
            3 => b.truncate(at),
            // Repeat a short slice many times: deep nesting and wide lists.
            4 => {
                let end = (at + 1 + r.below(8)).min(b.len());
                let piece = b[at..end].to_vec();
                let times = 1 + r.below(2000);
                let mut tail = b.split_off(end);
                for _ in 0..times {
                    b.extend(&piece);
                    if b.len() > protocol::MAX_PUBLISH_BYTES {
                        break;
                    }
                }
                b.append(&mut tail);
            }
            _ => b.extend_from_slice(&seed[..r.below(seed.len())]),
        }
    }
    b.truncate(protocol::MAX_PUBLISH_BYTES);
    b
}

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let mut rng = Rng(args.next().and_then(|a| a.parse().ok()).unwrap_or(1) | 1);
    let seeds = seeds();
    let (mut worst_peak, mut worst_us, mut accepted) = (0f64, 0f64, 0usize);
    for i in 0..iterations + seeds.len() {
        let input = match seeds.get(i) {
            Some(s) => s.clone(),
            None => {
                let k = rng.below(seeds.len());
                mutate(&mut rng, &seeds[k])
            }
        };
        let base = LIVE.load(Relaxed);
        PEAK.store(base, Relaxed);
        let t = Instant::now();
        let r = protocol::decode(&input);
        let us = t.elapsed().as_secs_f64() * 1e6;
        accepted += usize::from(r.is_ok());
        drop(r);
        let peak = PEAK.load(Relaxed) - base;
        let n = input.len();
        if peak > PEAK_PER_BYTE * n + PEAK_FIXED {
            eprintln!("input {i} ({n} bytes): peak {peak} bytes, over the bound");
            std::process::exit(1);
        }
        if n >= 1024 {
            worst_peak = worst_peak.max(peak as f64 / n as f64);
            worst_us = worst_us.max(us / n as f64);
        }
    }
    println!(
        "fuzz_decode: {} inputs, {accepted} accepted, none panicked; worst over inputs >= 1 KiB: \
         peak {worst_peak:.0} bytes and {worst_us:.3} us per input byte",
        iterations + seeds.len()
    );
}
