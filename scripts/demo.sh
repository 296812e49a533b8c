#!/usr/bin/env bash
# make demo: a local MariaDB master with TLS, replink streaming from it
# over verified TLS (ssl-mode=VERIFY_IDENTITY) into its relay log, and a
# MariaDB slave replicating from replink over TLS with a client
# certificate (REQUIRE X509). Rows written on the master are shown
# arriving at the slave. `scripts/demo.sh stop` ends it.
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
D=$TOP/demo
BIN=$TOP/bin/replink
MASTER_PORT=${MASTER_PORT:-13306}
SLAVE_PORT=${SLAVE_PORT:-13308}
RELAY_PORT=${RELAY_PORT:-13307}
METRICS=${METRICS:-127.0.0.1:9105}
MARIADBD=$(command -v mariadbd || echo /usr/sbin/mariadbd)

stop() {
  for p in "$D/replink.pid" "$D/master/mysqld.pid" "$D/slave/mysqld.pid"; do
    [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
  done
  sleep 1
}
if [ "${1:-}" = "stop" ]; then stop; echo "demo stopped"; exit 0; fi

stop
rm -rf "$D" && mkdir -p "$D/master" "$D/slave" "$D/relay"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "certificates (replink certs)"
"$BIN" certs --out "$D/certs" --hosts localhost,127.0.0.1 --days 30

# start_server NAME PORT SERVER_ID: a mariadbd in $D/NAME with TLS.
start_server() {
  local n=$1 port=$2 id=$3
  mariadb-install-db --no-defaults --user="$(id -un)" --datadir="$D/$n/data" \
    --auth-root-authentication-method=normal --skip-test-db >"$D/$n/install.log" 2>&1
  cat >"$D/$n/my.cnf" <<CNF
[mariadbd]
datadir=$D/$n/data
socket=$D/$n/mysqld.sock
pid-file=$D/$n/mysqld.pid
log-error=$D/$n/error.log
port=$port
bind-address=127.0.0.1
user=$(id -un)
server-id=$id
log-bin=mariadb-bin
binlog_format=ROW
ssl-ca=$D/certs/ca.pem
ssl-cert=$D/certs/server-cert.pem
ssl-key=$D/certs/server-key.pem
innodb_buffer_pool_size=64M
CNF
  "$MARIADBD" --defaults-file="$D/$n/my.cnf" >/dev/null 2>&1 &
  for i in $(seq 1 120); do
    mariadb --no-defaults -S "$D/$n/mysqld.sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "$n did not start; see $D/$n/error.log" >&2
  exit 1
}

say "master and slave: mariadbd with TLS on 127.0.0.1:$MASTER_PORT and :$SLAVE_PORT"
start_server master "$MASTER_PORT" 1
start_server slave "$SLAVE_PORT" 3
m() { mariadb --no-defaults -S "$D/master/mysqld.sock" -uroot "$@"; }
sl() { mariadb --no-defaults -S "$D/slave/mysqld.sock" -uroot "$@"; }
m -e "CREATE USER 'repl'@'%' IDENTIFIED BY 'demo-repl-pass' REQUIRE SSL;
      GRANT REPLICATION SLAVE, REPLICATION CLIENT, REPLICATION MASTER ADMIN ON *.* TO 'repl'@'%';
      CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY AUTO_INCREMENT, item VARCHAR(64), qty INT, at DATETIME(6));"
m -e "SELECT @@version AS master_version, @@have_ssl AS have_ssl"

install -m 600 /dev/null "$D/repl.pass" && printf 'demo-repl-pass' >"$D/repl.pass"
install -m 600 /dev/null "$D/slave1.pass" && printf 'demo-slave-pass' >"$D/slave1.pass"
SUBJECT=$(openssl x509 -in "$D/certs/client-cert.pem" -noout -subject -nameopt compat | sed 's/^subject=//')
cat >"$D/replink.toml" <<TOML
[master]
host = "127.0.0.1"
port = $MASTER_PORT
user = "repl"
password-file = "$D/repl.pass"
server-id = 4001
ssl-mode = "VERIFY_IDENTITY"
ssl-ca = "$D/certs/ca.pem"
heartbeat-period = "1s"

[relay]
listen = "127.0.0.1:$RELAY_PORT"
data-dir = "$D/relay"
sync = "transaction"
ssl-ca = "$D/certs/ca.pem"
ssl-cert = "$D/certs/server-cert.pem"
ssl-key = "$D/certs/server-key.pem"
require-secure-transport = true

[[relay.users]]
name = "slave1"
password-file = "$D/slave1.pass"
require = "X509"
subject = "$SUBJECT"

[metrics]
listen = "$METRICS"
TOML

say "replink diagnose (the handshake, step by step)"
"$BIN" diagnose -c "$D/replink.toml" || true

say "replink run"
"$BIN" run -c "$D/replink.toml" >"$D/replink.log" 2>&1 &
echo $! >"$D/replink.pid"
sleep 1.5

say "slave: CHANGE MASTER TO replink (TLS, client certificate, REQUIRE X509 on replink)"
sl -e "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$RELAY_PORT, MASTER_USER='slave1', MASTER_PASSWORD='demo-slave-pass',
        MASTER_SSL=1, MASTER_SSL_CA='$D/certs/ca.pem', MASTER_SSL_CERT='$D/certs/client-cert.pem', MASTER_SSL_KEY='$D/certs/client-key.pem',
        MASTER_SSL_VERIFY_SERVER_CERT=1, MASTER_USE_GTID=no, MASTER_LOG_FILE='$(head -1 "$D/relay/replink.index")', MASTER_LOG_POS=4;
        START SLAVE;"
sleep 1

say "writing rows on the master"
for i in $(seq 1 5); do
  m -e "INSERT INTO shop.orders (item, qty, at) VALUES ('widget-$i', $i, NOW(6))"
done
m -e "SHOW MASTER STATUS\G" | grep -E 'File|Position'
sleep 1

say "the rows, on the slave"
sl -e "SELECT id, item, qty, at FROM shop.orders"
sl -e "SHOW SLAVE STATUS\G" | grep -E 'Slave_(IO|SQL)_Running:|Master_SSL_Allowed|Exec_Master_Log_Pos|Last_(IO|SQL)_Error:'
echo "checksum master: $(m -N -e 'CHECKSUM TABLE shop.orders' | awk '{print $2}')  slave: $(sl -N -e 'CHECKSUM TABLE shop.orders' | awk '{print $2}')"

say "replink status"
"$BIN" status --addr "$METRICS"

say "the rows, as mariadb-binlog reads them from replink's relay log"
for f in $(cat "$D/relay/replink.index"); do
  mariadb-binlog -v "$D/relay/$f" 2>/dev/null | grep -A4 '### INSERT INTO `shop`.`orders`' | grep -E "INSERT|@2=" || true
done

say "relay file vs master file (byte compare; offset 21 is the in-use flag)"
f=$(tail -1 "$D/relay/replink.index")
cmp -l "$D/relay/$f" "$D/master/data/$f" | awk '$1!=22' | head -5 || true
ls -l "$D/relay/$f" "$D/master/data/$f"

say "metrics (http://$METRICS/metrics)"
if command -v curl >/dev/null; then
  curl -s "http://$METRICS/metrics" | grep -E '^replink_(master_up|replicas_connected|tls_connection_info|tls_handshakes_total|link_wire_bytes_total|link_payload_bytes_total|binlog_bytes_total|replication_lag_seconds)' || true
fi
cat <<MSG

replink is running: master 127.0.0.1:$MASTER_PORT -> replink (relay log $D/relay, slaves on :$RELAY_PORT) -> slave 127.0.0.1:$SLAVE_PORT.
  metrics:  http://$METRICS/metrics     status: http://$METRICS/status
  logs:     $D/replink.log
  stop:     scripts/demo.sh stop
MSG
