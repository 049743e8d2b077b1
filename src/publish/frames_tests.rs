use super::*;

/// The remaining-length varint of `n` (MQTT 3.1.1 §2.2.3).
fn varint(mut n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        v.push(b);
        if n == 0 {
            return v;
        }
    }
}

/// A PUBLISH on `topic` at `qos` (packet id 0x1234 when QoS > 0) with `payload` bytes.
fn publish(topic: &[u8], qos: u8, payload: usize) -> Vec<u8> {
    let mut body = (topic.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(topic);
    if qos > 0 {
        body.extend_from_slice(&0x1234u16.to_be_bytes());
    }
    body.resize(body.len() + payload, b'x');
    let mut p = vec![(PUBLISH << 4) | (qos << 1) | 1];
    p.extend(varint(body.len()));
    p.extend(body);
    p
}

/// Feeds `stream` in pieces of `chunk` bytes; returns what was forwarded and seen.
fn run(limit: usize, stream: &[u8], chunk: usize) -> Result<(Vec<u8>, Vec<Seen>), FrameError> {
    let mut f = Frames::new(limit);
    let (mut out, mut seen) = (Vec::new(), Vec::new());
    for piece in stream.chunks(chunk) {
        let before = out.len();
        f.feed(piece, &mut out, &mut seen)?;
        assert!(out.len() - before <= piece.len() + 5);
    }
    assert!(f.at_boundary(), "stream ended inside a packet");
    Ok((out, seen))
}

const SUBACK: [u8; 5] = [0x90, 0x03, 0x00, 0x01, 0x01];

#[test]
fn packets_within_the_limit_pass_through_intact_in_any_split() {
    let mut stream = SUBACK.to_vec();
    stream.extend(publish(b"t/accepted", 1, 300));
    stream.extend([0xd0, 0x00]); // PINGRESP
    stream.extend(publish(b"t/rejected", 0, 20_000)); // 3-byte varint
    for chunk in [1, 2, 3, 7, 64, stream.len()] {
        let (out, seen) = run(200_000, &stream, chunk).unwrap();
        assert_eq!(out, stream, "chunk {chunk}");
        let firsts: Vec<u8> = seen
            .iter()
            .map(|s| match s {
                Seen::Forwarded(b) => *b,
                Seen::Dropped(d) => panic!("dropped {d:?}"),
            })
            .collect();
        assert_eq!(firsts, vec![0x90, 0x33, 0xd0, 0x31], "chunk {chunk}");
    }
}

#[test]
fn an_oversized_qos1_publish_is_dropped_with_its_topic_and_packet_id() {
    let big = publish(
        b"$aws/things/T/defender/metrics/json/accepted",
        1,
        200 * 1024,
    );
    let mut stream = SUBACK.to_vec();
    stream.extend(&big);
    stream.extend(publish(b"t/accepted", 1, 10));
    for chunk in [1, 5, 4096, stream.len()] {
        let (out, seen) = run(129 * 1024, &stream, chunk).unwrap();
        let mut expect = SUBACK.to_vec();
        expect.extend(publish(b"t/accepted", 1, 10));
        assert_eq!(out, expect, "chunk {chunk}");
        assert_eq!(
            seen[1],
            Seen::Dropped(Dropped {
                topic: "$aws/things/T/defender/metrics/json/accepted".into(),
                size: big.len() - 4,
                qos: 1,
                pid: Some(0x1234),
            }),
            "chunk {chunk}"
        );
        assert_eq!(seen.len(), 3);
    }
}

#[test]
fn an_oversized_qos0_publish_has_no_packet_id() {
    let (out, seen) = run(100, &publish(b"a/b", 0, 500), 9).unwrap();
    assert!(out.is_empty());
    assert_eq!(
        seen,
        vec![Seen::Dropped(Dropped {
            topic: "a/b".into(),
            size: 2 + 3 + 500,
            qos: 0,
            pid: None,
        })]
    );
}

#[test]
fn a_four_byte_length_and_a_64_kib_topic_split_across_reads() {
    let topic = vec![b'q'; 65_535];
    let big = publish(&topic, 1, 2_100_000);
    assert_eq!(&big[1..5], &varint(2 + 65_535 + 2 + 2_100_000)[..]);
    assert_eq!(big[4] & 0x80, 0, "a 4-byte varint");
    let (out, seen) = run(129 * 1024, &big, 1000).unwrap();
    assert!(out.is_empty());
    let Seen::Dropped(d) = &seen[0] else {
        panic!("{seen:?}")
    };
    assert_eq!(d.topic.len(), TOPIC_KEPT, "only the topic's start is kept");
    assert_eq!(d.pid, Some(0x1234));
    assert_eq!(d.size, big.len() - 5);
}

#[test]
fn several_packets_in_one_read_around_a_dropped_one() {
    let mut stream = publish(b"a", 1, 5);
    stream.extend(publish(b"b", 1, 50));
    stream.extend(publish(b"c", 0, 5));
    let (out, seen) = run(20, &stream, stream.len()).unwrap();
    let mut expect = publish(b"a", 1, 5);
    expect.extend(publish(b"c", 0, 5));
    assert_eq!(out, expect);
    assert!(matches!(&seen[1], Seen::Dropped(d) if d.topic == "b" && d.pid == Some(0x1234)));
    assert_eq!(seen.len(), 3);
}

#[test]
fn broken_framing_and_other_big_packets_are_errors() {
    let err = run(100, &[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], 1).unwrap_err();
    assert_eq!(err, FrameError::BadLength);
    let mut big_suback = vec![0x90];
    big_suback.extend(varint(500));
    let err = run(100, &big_suback, 2).unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::TooBig {
                kind: 9,
                size: 500,
                ..
            }
        ),
        "{err}"
    );
    // A topic length pointing past the packet's end.
    let mut liar = vec![0x32];
    liar.extend(varint(300));
    liar.extend(400u16.to_be_bytes());
    liar.resize(liar.len() + 298, 0);
    let err = run(100, &liar, 7).unwrap_err();
    assert_eq!(err, FrameError::BadPublish { size: 300, qos: 1 });
}

#[test]
fn puback_bytes() {
    assert_eq!(puback(0x1234), [0x40, 0x02, 0x12, 0x34]);
}

#[test]
fn feed_packet_stops_after_each_packet() {
    let mut stream = SUBACK.to_vec();
    stream.extend([0xd0, 0x00]);
    stream.extend(publish(b"b", 1, 50));
    let mut f = Frames::new(20);
    let (mut out, mut seen) = (Vec::new(), Vec::new());
    let mut ends = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        at += f.feed_packet(&stream[at..], &mut out, &mut seen).unwrap();
        ends.push(at);
        assert!(f.at_boundary());
    }
    assert_eq!(ends, vec![5, 7, stream.len()]);
    assert_eq!(out, stream[..7]);
}
