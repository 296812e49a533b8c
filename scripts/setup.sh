#!/usr/bin/env bash
# Installs what replink's tests and demo need on a Debian machine, only
# when it is missing: MariaDB server and client, Prometheus (promtool),
# Alertmanager (amtool), OpenSSL, Chromium (headless, for the status page
# test), Node.js and npm with test/zongji's pinned npm packages (the
# zongji client test); with
# --bench also stunnel4 and gnuplot for `make bench`. Safe to run
# repeatedly.
set -euo pipefail

# test/zongji's node_modules, exactly as its package-lock.json pins them,
# when they are missing or older than the lock (npm writes
# node_modules/.package-lock.json on each install).
zongji_modules() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/test/zongji"
  if [ -f "$dir/node_modules/.package-lock.json" ] && [ ! "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    return 0
  fi
  echo "setup: npm ci in test/zongji"
  npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null || {
    echo "setup: npm ci --prefix $dir failed" >&2
    exit 1
  }
}

need=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || need+=(mariadb-client)
command -v mariadb-binlog >/dev/null 2>&1 || need+=(mariadb-client)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)  # make rules: amtool check-config
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v chromium >/dev/null 2>&1 || need+=(chromium)   # the status page test
command -v node >/dev/null 2>&1 || need+=(nodejs)       # the zongji client test
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ "${1:-}" = "--bench" ]; then
  command -v stunnel4 >/dev/null 2>&1 || need+=(stunnel4)  # the tunnel contender
  command -v gnuplot >/dev/null 2>&1 || need+=(gnuplot-nox) # bench/out/bench.png
fi

if [ ${#need[@]} -eq 0 ]; then
  zongji_modules
  exit 0
fi
# Unique package names.
readarray -t pkgs < <(printf '%s\n' "${need[@]}" | sort -u)
echo "setup: installing ${pkgs[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The Debian service scripts cannot start mariadbd in these machines; we
# start our own instances, so a policy refusal to start is fine.
$SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null || {
  echo "setup: apt-get install ${pkgs[*]} failed" >&2
  exit 1
}
zongji_modules
