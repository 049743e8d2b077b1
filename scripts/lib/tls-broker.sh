# shellcheck shell=bash
# Sourced by scripts: a throwaway PKI (openssl), a mosquitto with mutual TLS on a free
# loopback port, and an agent config pointing at it. The caller defines `fail` and `info`,
# sets `work` (a scratch dir it removes) and kills "$broker_pid" on exit.

# tls_broker_start: certificates in $work, mosquitto started; sets `port` and `broker_pid`.
tls_broker_start() {
    : "${work:?tls_broker_start needs \$work}"
    # --- certificates: CA, server (localhost/127.0.0.1), client --------------------------------
    info "generating certificates in $work"
    ossl() { openssl "$@" >>"$work/openssl.log" 2>&1 || { cat "$work/openssl.log" >&2; fail "openssl $1 failed"; }; }
    ossl ecparam -name prime256v1 -genkey -noout -out "$work/ca.key"
    ossl req -x509 -new -key "$work/ca.key" -sha256 -days 2 -subj "/CN=bench-ca" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$work/ca.pem"
    issue() { # name subject extensions
        ossl ecparam -name prime256v1 -genkey -noout -out "$work/$1.key.sec1"
        ossl pkcs8 -topk8 -nocrypt -in "$work/$1.key.sec1" -out "$work/$1.key"
        ossl req -new -key "$work/$1.key" -subj "$2" -out "$work/$1.csr"
        printf '%s\n' "$3" >"$work/$1.ext"
        ossl x509 -req -in "$work/$1.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
            -CAcreateserial -days 2 -sha256 -extfile "$work/$1.ext" -out "$work/$1.pem"
    }
    issue server "/CN=localhost" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1"
    issue client "/CN=bench-thing" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"

    # --- mosquitto on a free loopback port ------------------------------------------------------
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$work/mosquitto.conf" <<CONF
per_listener_settings false
persistence false
allow_anonymous true
log_dest file $work/mosquitto.log
log_type all
listener $port 127.0.0.1
cafile $work/ca.pem
certfile $work/server.pem
keyfile $work/server.key
require_certificate true
use_identity_as_username false
CONF
    # As root, mosquitto would drop to user 'mosquitto', which cannot read this private scratch dir.
    if [ "$(id -u)" -eq 0 ]; then echo "user root" >>"$work/mosquitto.conf"; fi
    mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.out" 2>&1 &
    broker_pid=$!
    for _ in $(seq 1 50); do # up to 5 s for the listener
        python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()' \
            "$port" 2>/dev/null && break
        kill -0 "$broker_pid" 2>/dev/null || { cat "$work/mosquitto.out" "$work/mosquitto.log" >&2 2>/dev/null; fail "mosquitto exited"; }
        sleep 0.1
    done
    info "mosquitto pid $broker_pid on 127.0.0.1:$port (mutual TLS)"
}

# agent_config INTERVAL: writes $work/agent.toml (thing "bench-thing", json) for $port.
agent_config() {
    local interval=$1
    mkdir -p "$work/state"
    cat >"$work/agent.toml" <<CONF
thing_name = "bench-thing"

[mqtt]
endpoint = "127.0.0.1"
port = $port
ca_file = "$work/ca.pem"
cert_file = "$work/client.pem"
key_file = "$work/client.key"
tls_server_name = "localhost"

[report]
interval_secs = $interval
format = "json"
# mosquitto sends no accepted/rejected verdicts; do not wait long for them.
verdict_timeout_secs = 1

[state]
dir = "$work/state"
CONF
}
