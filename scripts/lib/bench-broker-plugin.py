#!/usr/bin/env python3
"""The measuring half of scripts/bench-broker-plugin: raw MQTT 3.1.1 over sockets (no client
library), so the Python side costs little next to the broker. Prints figures only."""

import socket
import statistics
import sys
import threading
import time

USER, PASSWORD = b"bench", b"bench-pw"


def varint(n):
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(b):
    return len(b).to_bytes(2, "big") + b


def packet(kind, body):
    return bytes([kind]) + varint(len(body)) + body


def connect_packet(cid):
    var = s(b"MQTT") + bytes([4, 0x80 | 0x40 | 0x02]) + (600).to_bytes(2, "big")
    return packet(0x10, var + s(cid.encode()) + s(USER) + s(PASSWORD))


def publish_packet(topic, payload):
    return packet(0x30, s(topic) + payload)


DISCONNECT = bytes([0xE0, 0])


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def client(port, cid):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(connect_packet(cid))
    ack = read_exact(sock, 4)
    if ack[0] != 0x20 or ack[3] != 0:
        raise ConnectionError(f"CONNACK {ack.hex()}")
    return sock


def subscribe(sock, topic):
    sock.sendall(packet(0x82, (1).to_bytes(2, "big") + s(topic) + bytes([0])))
    ack = read_exact(sock, 5)
    if ack[0] != 0x90 or ack[4] != 0:
        raise ConnectionError(f"SUBACK {ack.hex()}")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_ns(pid):
    """CPU time the (single-threaded) broker has used, in ns: the first field of schedstat."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def answers(port):
    try:
        client(port, "bench-probe").close()
        return True
    except OSError:
        return False


def hold_clients(port, pid, n, tag):
    idle = rss_kib(pid)
    socks = []
    for start in range(0, n, 500):  # pipelined in groups: CONNECTs out, then the CONNACKs
        group = []
        for i in range(start, min(n, start + 500)):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.sendall(connect_packet(f"{tag}-{i}"))
            group.append(sock)
        for sock in group:
            ack = read_exact(sock, 4)
            if ack[3] != 0:
                raise ConnectionError(f"CONNACK {ack.hex()}")
        socks.extend(group)
    time.sleep(2.5)  # the plugin flushes its connect events
    held = rss_kib(pid)
    for sock in socks:
        try:
            sock.sendall(DISCONNECT)
        except OSError:
            pass
        sock.close()
    time.sleep(2.5)
    return idle, held, rss_kib(pid)


def drain(sock, want):
    """Bytes read from `sock` until `want` have come, it closes, or its timeout passes."""
    got = 0
    try:
        while got < want:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
    except socket.timeout:
        pass
    return got


def rate_round(port, pid, msgs, tag):
    payload = bytes(64)
    pkt = publish_packet(b"bench/rate", payload)
    sub = client(port, f"{tag}-sub")
    subscribe(sub, b"bench/rate")
    pub = client(port, f"{tag}-pub")
    want = msgs * len(pkt)
    buf = pkt * msgs
    cpu0 = cpu_ns(pid)
    t0 = time.perf_counter()
    sender = threading.Thread(target=pub.sendall, args=(buf,))
    sender.start()
    sub.settimeout(5)
    got = drain(sub, want)
    elapsed = time.perf_counter() - t0
    cpu = cpu_ns(pid) - cpu0
    sender.join()
    for sock in (pub, sub):
        sock.sendall(DISCONNECT)
        sock.close()
    n = got // len(pkt)
    return n / elapsed, n, cpu / max(n, 1)


def stress(name, port, pid, cycles, flood):
    before = rss_kib(pid)
    t0 = time.perf_counter()
    for i in range(cycles):
        sock = client(port, f"cycle-{i % 100}")
        sock.sendall(DISCONNECT)
        sock.close()
    took = time.perf_counter() - t0
    print(f"== {name}: {cycles} connect/disconnect cycles: {took:.1f} s "
          f"({cycles / took:.0f}/s), RSS {before} -> {rss_kib(pid)} KiB")
    sub = client(port, "flood-sub")
    subscribe(sub, b"bench/#")
    sub.settimeout(0.5)
    pub = client(port, "flood-pub")
    pkt = publish_packet(b"bench/flood", bytes(32))
    t0 = time.perf_counter()
    for _ in range(flood // 10000):
        pub.sendall(pkt * 10000)
    got = drain(sub, (flood // 10000) * 10000 * len(pkt))
    took = time.perf_counter() - t0
    for sock in (pub, sub):
        sock.close()
    time.sleep(2.5)
    print(f"== {name}: flood of {flood} QoS 0 publishes (one subscriber): {took:.1f} s, "
          f"{got // len(pkt)} delivered, RSS after {rss_kib(pid)} KiB, "
          f"mosquitto answers: {'yes' if answers(port) else 'NO'}")


def main():
    p_with, pid_with, p_without, pid_without = (int(a) for a in sys.argv[1:5])
    clients, cycles, flood, rounds, msgs = (int(a) for a in sys.argv[5:10])
    brokers = {"with plugin": (p_with, pid_with), "without": (p_without, pid_without)}

    print(f"== {clients} clients connected at once (RSS of mosquitto, KiB)")
    per = {}
    for name, (port, pid) in brokers.items():
        idle, held, after = hold_clients(port, pid, clients, f"hold-{name[:4]}")
        per[name] = (held - idle) * 1024 / clients
        print(f"   {name:12} idle {idle:7}  connected {held:7}  after disconnect {after:7}"
              f"  => {per[name]:6.0f} B per client")
    print(f"   the plugin's share: {per['with plugin'] - per['without']:.0f} B per connected client")

    # The same stress on both brokers, so that the rate comparison below starts from equal state.
    for name, (port, pid) in brokers.items():
        stress(name, port, pid, cycles, flood)

    print(f"== message rate, {rounds} rounds of {msgs} x 64-byte QoS 0 (one publisher, one subscriber)")
    rates = {name: [] for name in brokers}
    cpus = {name: [] for name in brokers}
    for r in range(rounds):
        order = list(brokers.items()) if r % 2 == 0 else list(brokers.items())[::-1]
        for name, (port, pid) in order:
            rate, n, cpu = rate_round(port, pid, msgs, f"rate-{r}")
            rates[name].append(rate)
            cpus[name].append(cpu)
            lost = f" ({msgs - n} not delivered)" if n < msgs else ""
            print(f"   round {r} {name:12} {rate:9.0f} msg/s  broker CPU {cpu:6.0f} ns/msg{lost}")
    med = {name: statistics.median(v) for name, v in rates.items()}
    ratio = med["with plugin"] / med["without"]
    print(f"   median rate: with plugin {med['with plugin']:.0f} msg/s, without {med['without']:.0f} msg/s"
          f" => with/without = {ratio:.3f} ({(1 - ratio) * 100:+.1f} % slower; wall clock, shared cores)")
    cpu = {name: statistics.median(v) for name, v in cpus.items()}
    extra = cpu["with plugin"] / cpu["without"] - 1
    print(f"   median broker CPU per message: with plugin {cpu['with plugin']:.0f} ns, without "
          f"{cpu['without']:.0f} ns => {extra * 100:+.1f} % CPU per message, i.e. at most "
          f"{extra / (1 + extra) * 100:.1f} % fewer messages/s when the broker's core is the limit")
    print(f"   both still answer: {answers(p_with) and answers(p_without)}")


if __name__ == "__main__":
    main()
