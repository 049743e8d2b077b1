//! Issue #11 item 7: a broker that stops answering at one MQTT step (CONNACK, SUBACK or
//! PUBACK) never hangs the agent: the step times out, is logged, and the agent reconnects with
//! its backoff. The broker is a minimal MQTT 3.1.1 server over real TLS (the test PKI) on
//! loopback, written here because mosquitto always answers.
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use detect_testkit::agent::{Setup, config, spawn};
use detect_testkit::{Pki, eventually};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The request the fake broker never answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Silent {
    Connect,
    Subscribe,
    Publish,
}

#[derive(Default)]
struct Counts {
    connections: AtomicUsize,
    publishes: AtomicUsize,
}

fn server_config(pki: &Pki) -> Arc<rustls::ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.server.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&pki.server.key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    Arc::new(config)
}

/// Starts the fake broker; returns its port and what it saw. Its threads end with the test.
fn fake_broker(pki: &Pki, silent: Silent) -> (u16, Arc<Counts>) {
    let config = server_config(pki);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let counts = Arc::new(Counts::default());
    let seen = counts.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            seen.connections.fetch_add(1, Ordering::SeqCst);
            let (config, seen) = (config.clone(), seen.clone());
            std::thread::spawn(move || serve(tcp, config, silent, &seen));
        }
    });
    (port, counts)
}

/// One MQTT session: answers every packet except the `silent` step's.
fn serve(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    silent: Silent,
    seen: &Counts,
) -> io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(120)))?;
    let conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    loop {
        let (first, body) = read_packet(&mut tls)?;
        let answer: Vec<u8> = match first >> 4 {
            1 if silent != Silent::Connect => vec![0x20, 2, 0, 0],
            8 if silent != Silent::Subscribe => {
                // Packet id, then (length, filter, QoS) per topic: grant QoS 1 to each.
                let mut at = 2;
                let mut granted = Vec::new();
                while at + 2 <= body.len() {
                    at += 2 + usize::from(u16::from_be_bytes([body[at], body[at + 1]])) + 1;
                    granted.push(1);
                }
                let mut ack = vec![0x90, 2 + granted.len() as u8, body[0], body[1]];
                ack.extend(granted);
                ack
            }
            3 => {
                seen.publishes.fetch_add(1, Ordering::SeqCst);
                let topic = usize::from(u16::from_be_bytes([body[0], body[1]]));
                let qos = (first >> 1) & 3;
                match silent {
                    Silent::Publish => Vec::new(),
                    _ if qos == 1 => vec![0x40, 2, body[2 + topic], body[3 + topic]],
                    _ => Vec::new(),
                }
            }
            12 => vec![0xd0, 0],
            14 => return Ok(()),
            _ => Vec::new(),
        };
        tls.write_all(&answer)?;
        tls.flush()?;
    }
}

/// Fixed header (type byte, remaining length, MQTT 3.1.1 §2.2) and the rest of the packet.
fn read_packet(r: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    let first = b[0];
    let mut len = 0usize;
    for shift in [0, 7, 14, 21] {
        r.read_exact(&mut b)?;
        len |= usize::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            let mut body = vec![0; len];
            r.read_exact(&mut body)?;
            return Ok((first, body));
        }
    }
    Err(io::Error::other("remaining length over 4 bytes"))
}

/// Runs the agent against a broker silent at `silent`; true when it connected again within
/// `bound`. Returns the agent's log too.
async fn reconnects(silent: Silent, bound: Duration) -> (bool, String, usize) {
    let pki = Pki::generate();
    let (port, counts) = fake_broker(&pki, silent);
    let work = tempfile::tempdir().unwrap();
    let cfg = config(&Setup::plain(
        work.path(),
        port,
        &pki.ca,
        &pki.client_ec,
        "json",
        2,
    ));
    let agent = spawn(&cfg, &[]);
    let again = eventually(bound, || counts.connections.load(Ordering::SeqCst) >= 2).await;
    let log = agent.log();
    let (status, _) = agent.stop().await;
    assert!(status.success(), "{silent:?}: exit {status:?}\n{log}");
    (again, log, counts.publishes.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_broker_that_never_sends_suback_is_left_and_reconnected() {
    let (again, log, publishes) = reconnects(Silent::Subscribe, Duration::from_secs(30)).await;
    assert!(again, "no reconnect within 30 s:\n{log}");
    assert!(
        log.contains("MQTT step timed out") && log.contains("SUBACK"),
        "{log}"
    );
    assert_eq!(publishes, 0, "nothing is published before the SUBACK");
    assert!(log.contains("report not delivered"), "{log}");
}

#[tokio::test]
async fn a_broker_that_never_sends_puback_is_left_and_reconnected() {
    // PUBACK may take 30 s (a full payload on a slow link), then the backoff.
    let (again, log, publishes) = reconnects(Silent::Publish, Duration::from_secs(50)).await;
    assert!(again, "no reconnect within 50 s:\n{log}");
    assert!(
        log.contains("MQTT step timed out") && log.contains("PUBACK"),
        "{log}"
    );
    assert!(publishes >= 1);
    assert!(log.contains("report not delivered"), "{log}");
}

#[tokio::test]
async fn a_broker_that_never_sends_connack_is_left_and_reconnected() {
    let (again, log, publishes) = reconnects(Silent::Connect, Duration::from_secs(30)).await;
    assert!(again, "no reconnect within 30 s:\n{log}");
    assert!(log.contains("MQTT connection failed"), "{log}");
    assert_eq!(publishes, 0);
}
