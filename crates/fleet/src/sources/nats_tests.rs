use super::*;
use protocol::broker::Event;

fn ev() -> Vec<Event> {
    let (client_id, ip) = ("gw-a".to_string(), "127.0.0.1".to_string());
    vec![Event::Connect {
        at_ms: 1,
        client_id,
        ip,
        ok: true,
    }]
}

#[test]
fn a_full_queue_drops_deliveries_counts_their_events_and_the_next_one_carries_the_count() {
    let (tx, mut rx) = mpsc::channel(1);
    let instance = "i".to_string();
    let mut s = Sender {
        tx,
        instance,
        seq: 0,
        dropped: 0,
    };
    s.deliver(ev());
    s.deliver(ev());
    s.deliver(Vec::new());
    assert_eq!((s.seq, s.dropped), (1, 1));
    assert!(matches!(rx.try_recv(), Ok(Feed::Delivery(d)) if d.seq == 0 && d.dropped == 0));
    s.deliver(ev());
    assert!(matches!(rx.try_recv(), Ok(Feed::Delivery(d)) if d.seq == 1 && d.dropped == 1));
    assert_eq!(s.dropped, 0);
}
