#!/usr/bin/env bash
# make demo: a local MariaDB master with TLS, replink streaming from it
# over verified TLS (ssl-mode=VERIFY_IDENTITY) into its relay log, rows
# written on the master and shown arriving. `scripts/demo.sh stop` ends it.
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
D=$TOP/demo
BIN=$TOP/bin/replink
MASTER_PORT=${MASTER_PORT:-13306}
METRICS=${METRICS:-127.0.0.1:9105}
MARIADBD=$(command -v mariadbd || echo /usr/sbin/mariadbd)

stop() {
  for p in "$D/replink.pid" "$D/master/mysqld.pid"; do
    [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
  done
  sleep 1
}
if [ "${1:-}" = "stop" ]; then stop; echo "demo stopped"; exit 0; fi

stop
rm -rf "$D" && mkdir -p "$D/master" "$D/relay"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "certificates (replink certs)"
"$BIN" certs --out "$D/certs" --hosts localhost,127.0.0.1 --days 30

say "master: mariadbd with TLS on 127.0.0.1:$MASTER_PORT"
mariadb-install-db --no-defaults --user="$(id -un)" --datadir="$D/master/data" \
  --auth-root-authentication-method=normal --skip-test-db >"$D/master/install.log" 2>&1
cat >"$D/master/my.cnf" <<CNF
[mariadbd]
datadir=$D/master/data
socket=$D/master/mysqld.sock
pid-file=$D/master/mysqld.pid
log-error=$D/master/error.log
port=$MASTER_PORT
bind-address=127.0.0.1
user=$(id -un)
server-id=1
log-bin=mariadb-bin
binlog_format=ROW
ssl-ca=$D/certs/ca.pem
ssl-cert=$D/certs/server-cert.pem
ssl-key=$D/certs/server-key.pem
innodb_buffer_pool_size=64M
CNF
"$MARIADBD" --defaults-file="$D/master/my.cnf" >/dev/null 2>&1 &
for i in $(seq 1 120); do
  mariadb --no-defaults -S "$D/master/mysqld.sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break
  sleep 0.5
done
m() { mariadb --no-defaults -S "$D/master/mysqld.sock" -uroot "$@"; }
m -e "CREATE USER 'repl'@'%' IDENTIFIED BY 'demo-repl-pass' REQUIRE SSL;
      GRANT REPLICATION SLAVE, REPLICATION CLIENT, REPLICATION MASTER ADMIN ON *.* TO 'repl'@'%';
      CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY AUTO_INCREMENT, item VARCHAR(64), qty INT, at DATETIME(6));"
m -e "SELECT @@version AS master_version, @@have_ssl AS have_ssl"

install -m 600 /dev/null "$D/repl.pass" && printf 'demo-repl-pass' >"$D/repl.pass"
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
data-dir = "$D/relay"
sync = "transaction"

[metrics]
listen = "$METRICS"
TOML

say "replink diagnose (the handshake, step by step)"
"$BIN" diagnose -c "$D/replink.toml" || true

say "replink run"
"$BIN" run -c "$D/replink.toml" >"$D/replink.log" 2>&1 &
echo $! >"$D/replink.pid"
sleep 1.5

say "writing rows on the master"
for i in $(seq 1 5); do
  m -e "INSERT INTO shop.orders (item, qty, at) VALUES ('widget-$i', $i, NOW(6))"
done
m -e "SHOW MASTER STATUS\G" | grep -E 'File|Position'
sleep 1

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
  curl -s "http://$METRICS/metrics" | grep -E '^replink_(master_up|tls_connection_info|tls_handshakes_total|link_wire_bytes_total|link_payload_bytes_total|binlog_bytes_total|replication_lag_seconds)' || true
fi
cat <<MSG

replink is running between the master (127.0.0.1:$MASTER_PORT) and its relay log in $D/relay.
  metrics:  http://$METRICS/metrics     status: http://$METRICS/status
  logs:     $D/replink.log
  stop:     scripts/demo.sh stop
MSG
