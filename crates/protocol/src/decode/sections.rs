//! The structural part of a report as shapes of the typed walk: header and the four `metrics`
//! sections, keys checked as they are read (protocol doc §1.1, §1.3, §1.4).

use serde::de::{self, MapAccess, SeqAccess};

use super::ctx::{Ctx, Min};
use super::fields::{Count, LocalPort, PortNumber, RemoteAddr, ReportId, Text, Version};
use super::leaf::Leaf;
use super::missing;
use super::walk::{Any, Opt, Shape, items};
use crate::keys::Key;
use crate::model::{
    Connection, ConnectionList, Header, Metrics, Missing, NetworkStats, Port, PortList,
};

/// Fewest bytes one port entry takes (`{"pt": 1}`), one connection (`{"rad": "[::]:1"}`).
const PORT_BYTES: Min = Min { cbor: 5, json: 9 };
const CONNECTION_BYTES: Min = Min { cbor: 12, json: 17 };

shape!(HeaderShape, "an object");
shape!(MetricsShape, "an object");
shape!(PortListShape, "an object");
shape!(PortsShape, "an array");
shape!(PortShape, "an object");
shape!(TcpShape, "an object");
shape!(EstablishedShape, "an object");
shape!(ConnectionsShape, "an array");
shape!(ConnectionShape, "an object");
shape!(StatsShape, "an object");

/// Fails with "`path` is required" for a required key left out.
fn need<T, E: de::Error>(c: &Ctx, v: Option<T>, k: Key) -> Result<T, E> {
    v.ok_or_else(|| c.fail(missing(&c.child(k))))
}

impl_shape!(HeaderShape, Header, {
    fn map<A: MapAccess<'de>>(self, mut a: A) -> Result<Header, A::Error> {
        let (c, mut seen) = (self.0, 0);
        let (mut id, mut version) = (None, None);
        while let Some(k) = c.key(&mut a, &[Key::ReportId, Key::Version], &mut seen)? {
            match k {
                Key::ReportId => id = Some(a.next_value_seed(Leaf(ReportId(c)))?),
                _ => version = Some(a.next_value_seed(Leaf(Version(c)))?),
            }
            c.pop();
        }
        let report_id = need(c, id, Key::ReportId)?;
        need(c, version, Key::Version)?;
        Ok(Header { report_id })
    }
});

impl_shape!(MetricsShape, Metrics, {
    fn map<A: MapAccess<'de>>(self, mut a: A) -> Result<Metrics, A::Error> {
        let allowed = [
            Key::ListeningTcpPorts,
            Key::ListeningUdpPorts,
            Key::TcpConnections,
            Key::NetworkStats,
        ];
        let (c, mut seen) = (self.0, 0);
        let (mut tcp, mut udp, mut est, mut network_stats) = (None, None, None, None);
        while let Some(k) = c.key(&mut a, &allowed, &mut seen)? {
            match k {
                Key::ListeningTcpPorts => tcp = a.next_value_seed(Any(Opt(PortListShape(c))))?,
                Key::ListeningUdpPorts => udp = a.next_value_seed(Any(Opt(PortListShape(c))))?,
                Key::TcpConnections => est = a.next_value_seed(Any(Opt(TcpShape(c))))?.flatten(),
                _ => network_stats = a.next_value_seed(Any(Opt(StatsShape(c))))?,
            }
            c.pop();
        }
        let missing = Missing {
            listening_tcp_ports: tcp.is_none(),
            listening_udp_ports: udp.is_none(),
            tcp_connections: est.is_none(),
        };
        Ok(Metrics {
            listening_tcp_ports: tcp.unwrap_or_default(),
            listening_udp_ports: udp.unwrap_or_default(),
            established: est.unwrap_or_default(),
            network_stats,
            missing,
        })
    }
});

impl_shape!(PortListShape, PortList, {
    fn map<A: MapAccess<'de>>(self, mut a: A) -> Result<PortList, A::Error> {
        let (c, mut seen) = (self.0, 0);
        let (mut ports, mut total) = (None, None);
        while let Some(k) = c.key(&mut a, &[Key::Ports, Key::Total], &mut seen)? {
            match k {
                Key::Ports => ports = a.next_value_seed(Any(Opt(PortsShape(c))))?,
                _ => total = a.next_value_seed(Leaf(Opt(Count(c))))?,
            }
            c.pop();
        }
        let mut ports = ports.unwrap_or_default();
        ports.sort_unstable();
        ports.dedup();
        let distinct = 1 + ports.windows(2).filter(|w| w[0].port != w[1].port).count();
        let distinct = if ports.is_empty() { 0 } else { distinct };
        Ok(PortList {
            ports,
            total: total.unwrap_or(distinct as u64),
        })
    }
});

impl_shape!(PortsShape, Vec<Port>, {
    fn seq<A: SeqAccess<'de>>(self, a: A) -> Result<Vec<Port>, A::Error> {
        items(self.0, a, PORT_BYTES, || PortShape(self.0))
    }
});

impl_shape!(PortShape, Port, {
    fn map<A: MapAccess<'de>>(self, mut a: A) -> Result<Port, A::Error> {
        let (c, mut seen) = (self.0, 0);
        let (mut port, mut interface) = (None, None);
        while let Some(k) = c.key(&mut a, &[Key::Port, Key::Interface], &mut seen)? {
            match k {
                Key::Port => port = Some(a.next_value_seed(Leaf(PortNumber(c)))?),
                _ => interface = a.next_value_seed(Leaf(Opt(Text(c))))?,
            }
            c.pop();
        }
        let port = need(c, port, Key::Port)?;
        Ok(Port { port, interface })
    }
});

impl_shape!(TcpShape, Option<ConnectionList>, {
    fn map<A: MapAccess<'de>>(self, mut a: A) -> Result<Option<ConnectionList>, A::Error> {
        let (c, mut seen, mut est) = (self.0, 0, None);
        while c
            .key(&mut a, &[Key::EstablishedConnections], &mut seen)?
            .is_some()
        {
            est = a.next_value_seed(Any(Opt(EstablishedShape(c))))?;
            c.pop();
        }
        Ok(est)
    }
});

impl_shape!(EstablishedShape, ConnectionList, {
    fn map<A: MapAccess<'de>>(self, mut a: A) -> Result<ConnectionList, A::Error> {
        let (c, mut seen) = (self.0, 0);
        let (mut list, mut total) = (None, None);
        while let Some(k) = c.key(&mut a, &[Key::Connections, Key::Total], &mut seen)? {
            match k {
                Key::Connections => list = a.next_value_seed(Any(Opt(ConnectionsShape(c))))?,
                _ => total = a.next_value_seed(Leaf(Opt(Count(c))))?,
            }
            c.pop();
        }
        let mut connections: Vec<Connection> = list.unwrap_or_default();
        // Unstable, as in report::build: equal entries are identical, and one sort instance.
        connections.sort_unstable();
        Ok(ConnectionList {
            total: total.unwrap_or(connections.len() as u64),
            connections,
        })
    }
});

impl_shape!(ConnectionsShape, Vec<Connection>, {
    fn seq<A: SeqAccess<'de>>(self, a: A) -> Result<Vec<Connection>, A::Error> {
        items(self.0, a, CONNECTION_BYTES, || ConnectionShape(self.0))
    }
});

impl_shape!(ConnectionShape, Connection, {
    fn map<A: MapAccess<'de>>(self, mut a: A) -> Result<Connection, A::Error> {
        let keys = [Key::RemoteAddr, Key::LocalPort, Key::LocalInterface];
        let (c, mut seen) = (self.0, 0);
        let (mut remote, mut local_port, mut local_interface) = (None, None, None);
        while let Some(k) = c.key(&mut a, &keys, &mut seen)? {
            match k {
                Key::RemoteAddr => remote = Some(a.next_value_seed(Leaf(RemoteAddr(c)))?),
                Key::LocalPort => local_port = a.next_value_seed(Leaf(Opt(LocalPort(c))))?,
                _ => local_interface = a.next_value_seed(Leaf(Opt(Text(c))))?,
            }
            c.pop();
        }
        Ok(Connection {
            remote: need(c, remote, Key::RemoteAddr)?,
            local_port: local_port.unwrap_or(0),
            local_interface,
        })
    }
});

impl_shape!(StatsShape, NetworkStats, {
    fn map<A: MapAccess<'de>>(self, mut a: A) -> Result<NetworkStats, A::Error> {
        let keys = [Key::BytesIn, Key::BytesOut, Key::PacketsIn, Key::PacketsOut];
        let (c, mut seen) = (self.0, 0);
        let mut vals = [None; 4];
        while let Some(k) = c.key(&mut a, &keys, &mut seen)? {
            let slot = keys.iter().position(|x| *x == k).unwrap_or(0);
            vals[slot] = Some(a.next_value_seed(Leaf(Count(c)))?);
            c.pop();
        }
        let [bytes_in, bytes_out, packets_in, packets_out] = [0, 1, 2, 3].map(|i| vals[i]);
        Ok(NetworkStats {
            bytes_in: need(c, bytes_in, Key::BytesIn)?,
            bytes_out: need(c, bytes_out, Key::BytesOut)?,
            packets_in: need(c, packets_in, Key::PacketsIn)?,
            packets_out: need(c, packets_out, Key::PacketsOut)?,
        })
    }
});
