//! Unit tests of the cut policy in `limits.rs`.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn wild(port: u16) -> PortFacts {
    PortFacts {
        port,
        loopback: false,
    }
}

fn lo(port: u16) -> PortFacts {
    PortFacts {
        port,
        loopback: true,
    }
}

fn no_custom() -> ListCut {
    ListCut { kept: 0, total: 0 }
}

#[test]
fn everything_kept_when_it_fits() {
    let ips = [ip("10.0.0.1"), ip("10.0.0.2")];
    let sizes = Sizes {
        base: 100,
        slack_per_list: 4,
        tcp: &[10, 10],
        udp: &[10],
        connections: &[50, 50],
    };
    let facts = Facts {
        tcp: &[wild(22), lo(80)],
        udp: &[wild(53)],
        remote_ips: &ips,
    };
    let sel = plan(&sizes, &facts);
    assert_eq!(sel, Selection::all(2, 1, 2));
    assert_eq!(sel.cut(2, 1, 2, no_custom()), None);
}

#[test]
fn one_connection_per_ip_before_more() {
    // 1000 connections to 10.0.0.1 then one to 10.0.0.9: the last one must survive.
    let mut ips = vec![ip("10.0.0.1"); 1000];
    ips.push(ip("10.0.0.9"));
    let conn = vec![1000; ips.len()];
    let facts = Facts {
        tcp: &[wild(1), wild(2), wild(3)],
        udp: &[wild(4), wild(5)],
        remote_ips: &ips,
    };
    let sizes = Sizes {
        base: 500,
        slack_per_list: 4,
        tcp: &[20; 3],
        udp: &[20; 2],
        connections: &conn,
    };
    let sel = plan(&sizes, &facts);
    assert_eq!((sel.tcp.len(), sel.udp.len()), (3, 2));
    assert!(sel.connections.contains(&0) && sel.connections.contains(&1000));
    let kept = sel.connections.len();
    assert!(kept > 2 && kept < 128, "{kept}");
    // Ascending order, the prefix of the remaining ones.
    assert_eq!(
        &sel.connections[..kept - 1],
        (0..kept - 1).collect::<Vec<_>>()
    );
    let cut = sel.cut(3, 2, 1001, no_custom()).unwrap();
    assert_eq!(cut.connections, ListCut { kept, total: 1001 });
    assert_eq!(cut.tcp_ports, ListCut { kept: 3, total: 3 });
}

#[test]
fn a_flood_of_one_list_leaves_every_other_list_its_share() {
    // 20 000 TCP entries of 100 bytes: far over the budget on their own.
    let tcp: Vec<PortFacts> = (1024..21_024).map(lo).collect();
    let tcp_sizes = vec![100; tcp.len()];
    let sizes = Sizes {
        base: 100,
        slack_per_list: 4,
        tcp: &tcp_sizes,
        udp: &[10],
        connections: &[10],
    };
    let facts = Facts {
        tcp: &tcp,
        udp: &[lo(5353)],
        remote_ips: &[ip("::1")],
    };
    let sel = plan(&sizes, &facts);
    assert_eq!((sel.udp.len(), sel.connections.len()), (1, 1));
    // TCP gets the rest of the budget.
    assert_eq!(sel.tcp.len(), (MAX_REPORT_BYTES - 1 - 112 - 20) / 100);
}

#[test]
fn decoys_on_loopback_never_push_out_a_wildcard_or_privileged_listener() {
    // 12 000 loopback decoys sort around the two listeners that matter.
    let mut tcp: Vec<PortFacts> = (20_000..32_000).map(lo).collect();
    tcp.push(wild(31_337));
    tcp.push(lo(22));
    tcp.sort_by_key(|p| p.port);
    let sizes_tcp = vec![40; tcp.len()];
    let sizes = Sizes {
        base: 100,
        slack_per_list: 4,
        tcp: &sizes_tcp,
        udp: &[],
        connections: &[],
    };
    let facts = Facts {
        tcp: &tcp,
        udp: &[],
        remote_ips: &[],
    };
    let sel = plan(&sizes, &facts);
    let kept: Vec<u16> = sel.tcp.iter().map(|i| tcp[*i].port).collect();
    assert!(kept.len() < tcp.len());
    assert!(
        kept.contains(&22) && kept.contains(&31_337),
        "{:?}",
        &kept[..5]
    );
    assert!(kept.windows(2).all(|w| w[0] < w[1]), "list order kept");
}

#[test]
fn port_priority_order() {
    let ports = [
        wild(8080),
        lo(8080),
        wild(8080),
        lo(9000),
        lo(80),
        wild(443),
        wild(443),
    ];
    // privileged wildcard, privileged repeat, privileged loopback, unprivileged wildcard,
    // its repeat, then loopback.
    assert_eq!(port_priority(&ports), [5, 6, 4, 0, 2, 1, 3]);
}

#[test]
fn connection_priority_order() {
    let ips = [
        ip("::1"),
        ip("::1"),
        ip("1.1.1.1"),
        ip("1.1.1.1"),
        ip("2.2.2.2"),
        ip("127.0.0.1"),
    ];
    assert_eq!(connection_priority(&ips), [2, 4, 3, 0, 5, 1]);
}
