#!/usr/bin/env bash
# Installs what replink's tests and demo need on a Debian machine, only
# when it is missing: MariaDB server and client, Prometheus (promtool),
# OpenSSL, Chromium (headless, for the status page test); with --bench
# also stunnel4 and gnuplot for `make bench`. Safe to run repeatedly.
set -euo pipefail

need=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || need+=(mariadb-client)
command -v mariadb-binlog >/dev/null 2>&1 || need+=(mariadb-client)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v chromium >/dev/null 2>&1 || need+=(chromium)   # the status page test
if [ "${1:-}" = "--bench" ]; then
  command -v stunnel4 >/dev/null 2>&1 || need+=(stunnel4)  # the tunnel contender
  command -v gnuplot >/dev/null 2>&1 || need+=(gnuplot-nox) # bench/out/bench.png
fi

if [ ${#need[@]} -eq 0 ]; then
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
