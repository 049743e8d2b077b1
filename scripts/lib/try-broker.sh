# shellcheck shell=bash
# Sourced by scripts/try-nats and scripts/try-rabbitmq (issue #12): a throwaway openssl PKI,
# a shell "backend" that answers every json report ACCEPTED, and one agent run against a
# broker on loopback with a summary line. The caller sets DIR (a scratch dir it removes), BIN
# (the agent binary), SECS, and kills the pids in PIDS on exit.

# need TOOL...: stops when one is missing.
need() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "${0##*/}: $tool missing" >&2; exit 1; }
    done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# try_pki: $DIR/ca.crt; localhost.{crt,key} for the server (localhost, 127.0.0.1);
# thing.{crt,key} (CN thing) and backend.{crt,key} (CN backend) for clients.
try_pki() {
    local quiet=(-days 2)
    ec() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$DIR/$1.key" -out "$DIR/$1.csr" -subj "/CN=$1" 2>/dev/null; }
    sign() { openssl x509 -req -in "$DIR/$1.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" -CAcreateserial -out "$DIR/$1.crt" "${quiet[@]}" -extfile <(printf '%s\n' "$2") 2>/dev/null; }
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$DIR/ca.key" -out "$DIR/ca.crt" "${quiet[@]}" -subj "/CN=${0##*/} CA" 2>/dev/null
    ec localhost && sign localhost "subjectAltName=DNS:localhost,IP:127.0.0.1"
    for c in thing backend; do ec "$c" && sign "$c" "extendedKeyUsage=clientAuth"; done
}

# try_run NAME PORT THING "AGENT LOGIN LINES" BACKEND-LOGIN-OPTIONS...: runs the backend and
# the agent (interval_secs = 2, json) for SECS seconds; prints what each saw.
try_run() {
    local name=$1 port=$2 thing=$3 login=$4; shift 4
    mkdir -p "$DIR/state-$name"
    cat > "$DIR/agent-$name.toml" <<EOF
thing_name = "$thing"
[mqtt]
endpoint = "127.0.0.1"
port = $port
ca_file = "$DIR/ca.crt"
tls_server_name = "localhost"
$login
[report]
interval_secs = 2
verdict_timeout_secs = 1
format = "json"
[state]
dir = "$DIR/state-$name"
EOF
    "$BIN" check-config --config "$DIR/agent-$name.toml" | sed "s/^/  check-config: /"
    local topic="\$aws/things/$thing/defender/metrics/json"
    ( timeout $((SECS + 3)) mosquitto_sub -h 127.0.0.1 -p "$port" --cafile "$DIR/ca.crt" "$@" -i "backend-$name" -q 1 -t "$topic" |
      while read -r line; do
          id=$(printf '%s' "$line" | python3 -c 'import sys,json; print(json.load(sys.stdin)["header"]["report_id"])')
          echo "$id" >> "$DIR/seen-$name"
          mosquitto_pub -h 127.0.0.1 -p "$port" --cafile "$DIR/ca.crt" "$@" -i "backend-pub-$name" -q 1 -t "$topic/accepted" \
              -m "{\"thingName\":\"$thing\",\"reportId\":$id,\"status\":\"ACCEPTED\",\"timestamp\":0}"
      done ) & PIDS+=($!)
    sleep 1
    RUST_LOG=info timeout -s TERM "$SECS" "$BIN" run --config "$DIR/agent-$name.toml" > "$DIR/agent-$name.log" 2>&1 || true
    echo "${0##*/}: $name: backend saw $(sort -u "$DIR/seen-$name" 2>/dev/null | wc -l) reports," \
         "agent logged $(grep -c 'verdict="accepted"' "$DIR/agent-$name.log") accepted verdicts in ${SECS} s (interval_secs = 2)"
    grep -E "WARN|ERROR" "$DIR/agent-$name.log" | grep -v "throttles" | sed "s/^/  agent: /" || true
    # The subscriber ends by its own timeout.
    wait "${PIDS[-1]}" 2>/dev/null || true
}
