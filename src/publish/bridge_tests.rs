use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::*;

/// A QoS-1 PUBLISH on topic "t" with packet id `pid` and `payload` bytes (remaining length
/// below 128: a 1-byte varint).
fn publish(pid: u16, payload: usize) -> Vec<u8> {
    let mut p = vec![0x32, (2 + 1 + 2 + payload) as u8, 0, 1, b't'];
    p.extend(pid.to_be_bytes());
    p.resize(p.len() + payload, b'x');
    p
}

/// The bridge between two socket pairs: (rumqttc's end, the broker's end, the bridge task).
fn bridge(
    limit: usize,
) -> (
    UnixStream,
    UnixStream,
    tokio::task::JoinHandle<Result<(), BridgeError>>,
) {
    let (client_end, mut client) = UnixStream::pair().unwrap();
    let (broker_end, mut broker) = UnixStream::pair().unwrap();
    let task = tokio::spawn(async move { pump(&mut client, &mut broker, limit).await });
    (client_end, broker_end, task)
}

async fn nothing_within(s: &mut UnixStream, wait: Duration) -> bool {
    let mut b = [0u8; 1];
    timeout(wait, s.read(&mut b)).await.is_err()
}

#[tokio::test]
async fn a_dropped_messages_puback_follows_the_clients_ack_of_the_one_before_it() {
    let (mut client, mut broker, task) = bridge(100);
    let small = publish(1, 10);
    let mut stream = small.clone();
    stream.extend(publish(2, 110));
    stream.extend(publish(3, 5));
    broker.write_all(&stream).await.unwrap();
    // The small ones pass intact; the big one is not forwarded.
    let mut got = vec![0u8; small.len() + publish(3, 5).len()];
    client.read_exact(&mut got).await.unwrap();
    assert_eq!(&got[..small.len()], &small[..]);
    assert_eq!(&got[small.len()..], &publish(3, 5)[..]);
    // Packet 2's PUBACK waits for the client's PUBACK of packet 1 (MQTT 3.1.1 §4.6), and
    // never cuts into a packet the client is sending.
    assert!(nothing_within(&mut broker, Duration::from_millis(200)).await);
    client.write_all(&[0x40, 0x02, 0x00]).await.unwrap();
    let mut first = [0u8; 3];
    broker.read_exact(&mut first).await.unwrap();
    assert!(nothing_within(&mut broker, Duration::from_millis(200)).await);
    // The rest of PUBACK 1 and PUBACK 3 in one write: the bridge's PUBACK 2 goes in between.
    client
        .write_all(&[0x01, 0x40, 0x02, 0x00, 0x03])
        .await
        .unwrap();
    let mut rest = [0u8; 9];
    broker.read_exact(&mut rest).await.unwrap();
    assert_eq!(
        [&first[..], &rest[..]].concat(),
        [0x40, 2, 0, 1, 0x40, 2, 0, 2, 0x40, 2, 0, 3]
    );
    // The client going away ends the bridge.
    drop(client);
    assert!(task.await.unwrap().is_ok());
}

#[tokio::test]
async fn an_oversized_packet_other_than_publish_ends_the_bridge_with_an_error() {
    let (_client, mut broker, task) = bridge(100);
    broker.write_all(&[0x90, 0xc8, 0x01]).await.unwrap();
    let err = task.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("type 9 with 200 bytes"), "{err}");
}
