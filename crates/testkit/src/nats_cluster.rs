//! Runs a real three-node nats-server cluster (Debian's 2.9) on free loopback ports: client,
//! route and monitoring port per node, JetStream with its own store directory per node.
//! One node can be killed (-9), restarted, paused (SIGSTOP) and resumed; all are killed on Drop.
//! `start_with_mqtt` adds an MQTT listener per node (nats-server's MQTT gateway, plain TCP,
//! log in as `USER`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use super::server;

/// The user of the cluster's JetStream account (DEV) and its password.
pub const USER: (&str, &str) = ("fleet", "fleet-password");

/// How long `start` and `restart` wait for a node's JetStream to report healthy.
const READY_LIMIT: Duration = Duration::from_secs(30);

struct Node {
    port: u16,
    http_port: u16,
    mqtt_port: Option<u16>,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

pub struct NatsCluster {
    nodes: Vec<Node>,
}

impl NatsCluster {
    /// Writes three configs into `dir`, starts the three nodes and waits (bounded) until each
    /// listens and its JetStream is healthy (meta leader elected, node current).
    pub fn start(dir: &Path) -> NatsCluster {
        Self::start_nodes(dir, false)
    }

    /// `start`, each node also listening for MQTT clients (`mqtt_port`).
    pub fn start_with_mqtt(dir: &Path) -> NatsCluster {
        Self::start_nodes(dir, true)
    }

    fn start_nodes(dir: &Path, mqtt: bool) -> NatsCluster {
        // Client, route, monitoring and MQTT port of each node, all distinct (held at once).
        let held: Vec<TcpListener> = (0..12)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let free: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        drop(held);
        let ports: Vec<(u16, u16, u16)> = free.chunks(4).map(|p| (p[0], p[1], p[2])).collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, route, _)| format!("\"nats-route://127.0.0.1:{route}\""))
            .collect();
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, &(port, route, http_port))| {
                let mqtt_port = mqtt.then_some(free[i * 4 + 3]);
                let mqtt_block = match mqtt_port {
                    Some(p) => format!("mqtt {{ listen: \"127.0.0.1:{p}\" }}\n"),
                    None => String::new(),
                };
                let conf = dir.join(format!("nats-n{i}.conf"));
                let text = format!(
                    "# written by crates/testkit/src/nats_cluster.rs\n\
                     server_name: \"n{i}\"\n\
                     listen: \"127.0.0.1:{port}\"\n\
                     http: \"127.0.0.1:{http_port}\"\n\
                     jetstream {{ store_dir: {js:?}, max_memory_store: 64MB, max_file_store: 256MB }}\n\
                     cluster {{ name: \"testkit\", listen: \"127.0.0.1:{route}\", routes: [ {routes} ] }}\n\
                     accounts {{\n\
                       SYS {{ users = [ {{ user: \"sys\", password: \"sys password\" }} ] }}\n\
                       DEV {{ jetstream: enabled, users = [ {{ user: {u:?}, password: {p:?} }} ] }}\n\
                     }}\n\
                     system_account: SYS\n\
                     {mqtt_block}",
                    js = dir.join(format!("js-n{i}")).display().to_string(),
                    routes = routes.join(", "),
                    u = USER.0,
                    p = USER.1,
                );
                std::fs::write(&conf, text).unwrap();
                Node {
                    port,
                    http_port,
                    mqtt_port,
                    log: dir.join(format!("nats-n{i}.log")),
                    conf,
                    child: None,
                }
            })
            .collect();
        let mut cluster = NatsCluster { nodes };
        for node in &mut cluster.nodes {
            let ports = [node.port];
            node.child = Some(server::start("nats-server", &node.conf, &node.log, &ports));
        }
        for i in 0..3 {
            cluster.wait_ready(i);
        }
        cluster
    }

    /// The client URLs of all nodes, for a client that fails over between them.
    pub fn urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.url(i)).collect()
    }

    /// Node `i`'s client URL (log in as `USER`).
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].port)
    }

    /// `[store]` (this cluster, replicas 3, user `USER` with its password in `password_file`)
    /// and `[cluster]` for `instance`, as the cluster tests give every instance.
    pub fn fleet_tables(&self, password_file: &std::path::Path, instance: &str) -> String {
        format!(
            "[store]\nkind = \"nats\"\nservers = {:?}\nuser = {:?}\npassword_file = {:?}\n\
             replicas = 3\n[cluster]\nenabled = true\ninstance = {instance:?}\n",
            self.urls(),
            USER.0,
            password_file.display().to_string()
        )
    }

    /// The instances of a cluster test: one `Fleet::configure`d in `work/fleet-<name>` per
    /// name (minimum report interval 1 s), each with `fleet_tables` and the password file
    /// they name (written in `work`).
    pub fn fleets(
        &self,
        work: &Path,
        pki: &super::Pki,
        broker: &super::Broker,
        names: &[&str],
        profiles: &[serde_json::Value],
        attach: &[(&str, &str)],
    ) -> Vec<super::fleet::Fleet> {
        let password = work.join("nats-password");
        std::fs::write(&password, USER.1).unwrap();
        names
            .iter()
            .map(|name| {
                let dir = work.join(format!("fleet-{name}"));
                let f = super::fleet::Fleet::configure(&dir, pki, broker, profiles, attach, 1);
                f.append_config(&self.fleet_tables(&password, name));
                f
            })
            .collect()
    }

    /// Node `i`'s MQTT port (`start_with_mqtt` only).
    pub fn mqtt_port(&self, i: usize) -> u16 {
        self.nodes[i]
            .mqtt_port
            .expect("started with MQTT listeners")
    }

    /// Node `i`'s process id while it runs (the fleet bench reads its CPU time).
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    /// `kill -9` of node `i`, waiting for it to exit; its store directory stays.
    pub fn kill(&mut self, i: usize) {
        server::stop(&mut self.nodes[i].child);
    }

    /// Starts node `i` again on the same ports and store, and waits until it is healthy.
    pub fn restart(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "node n{i} is running");
        let ports = [node.port];
        node.child = Some(server::start("nats-server", &node.conf, &node.log, &ports));
        self.wait_ready(i);
    }

    /// Sends SIGSTOP (`stop` true) or SIGCONT to node `i`.
    pub fn pause(&self, i: usize, stop: bool) {
        let child = self.nodes[i].child.as_ref().expect("node is running");
        pause(child.id(), stop);
    }

    /// The node that leads stream `stream` of the DEV account, as the first live node that
    /// knows answers on its monitoring port (`/jsz?acc=DEV&streams=true`); `None` while none
    /// knows (an election) or the stream does not exist.
    pub fn stream_leader(&self, stream: &str) -> Option<usize> {
        let path = "/jsz?acc=DEV&streams=true";
        let leader = self.live().find_map(|i| {
            let body = get(self.nodes[i].http_port, path).ok()?;
            let json = body.split_once("\r\n\r\n")?.1;
            let v: serde_json::Value = serde_json::from_str(json).ok()?;
            let accounts = v["account_details"].as_array()?;
            let streams = accounts
                .iter()
                .filter_map(|a| a["stream_detail"].as_array());
            let found = streams.flatten().find(|s| s["name"] == stream)?;
            found["cluster"]["leader"].as_str().map(str::to_string)
        })?;
        (0..self.nodes.len()).find(|&i| leader == format!("n{i}"))
    }

    /// The JetStream meta leader, as the first live node that knows answers (`/jsz`).
    pub fn meta_leader(&self) -> Option<usize> {
        let leader = self.live().find_map(|i| {
            let body = get(self.nodes[i].http_port, "/jsz").ok()?;
            let json = body.split_once("\r\n\r\n")?.1;
            let v: serde_json::Value = serde_json::from_str(json).ok()?;
            v["meta_cluster"]["leader"].as_str().map(str::to_string)
        })?;
        (0..self.nodes.len()).find(|&i| leader == format!("n{i}"))
    }

    /// Whether the leader of `stream` lists node `i` as a current replica (caught up).
    pub fn replica_current(&self, stream: &str, i: usize) -> bool {
        let Some(leader) = self.stream_leader(stream) else {
            return false;
        };
        let Ok(body) = get(self.nodes[leader].http_port, "/jsz?acc=DEV&streams=true") else {
            return false;
        };
        let json = body.split_once("\r\n\r\n").map_or("", |(_, j)| j);
        let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        let accounts = v["account_details"].as_array().cloned().unwrap_or_default();
        accounts
            .iter()
            .filter_map(|a| a["stream_detail"].as_array())
            .flatten()
            .filter(|s| s["name"] == stream)
            .filter_map(|s| s["cluster"]["replicas"].as_array())
            .flatten()
            .any(|r| r["name"] == format!("n{i}").as_str() && r["current"] == true)
    }

    /// The nodes running now.
    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].child.is_some())
    }

    /// Waits (at most READY_LIMIT) until node `i` answers `GET /healthz` with status ok, which
    /// 2.9 gives once JetStream is enabled and the node is current with the meta group.
    fn wait_ready(&self, i: usize) {
        let deadline = Instant::now() + READY_LIMIT;
        let mut last = String::new();
        while Instant::now() < deadline {
            match get(self.nodes[i].http_port, "/healthz") {
                Ok(body) if body.contains("\"ok\"") => return,
                Ok(body) => last = body,
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "nats-server n{i} not healthy within {READY_LIMIT:?} (last: {last}); log:\n{}",
            self.log(i)
        );
    }
}

/// Sends SIGSTOP (`stop` true) or SIGCONT to the process `pid` (a child of the test).
pub fn pause(pid: u32, stop: bool) {
    let signal = if stop { libc::SIGSTOP } else { libc::SIGCONT };
    // SAFETY: kill(2) with a pid and a signal number; no memory is shared.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
}

/// One HTTP/1.0 GET of `path` on a monitoring port; the whole response as text.
fn get(port: u16, path: &str) -> std::io::Result<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut out = String::new();
    stream.read_to_string(&mut out)?;
    Ok(out)
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = &node.child {
                // A stopped node must be resumed to die promptly.
                pause(child.id(), false);
            }
            server::stop(&mut node.child);
        }
    }
}
