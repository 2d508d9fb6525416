#!/usr/bin/env bash
# Make sure Redis (and, with --postgres, PostgreSQL) answer on 127.0.0.1.
# Starts them when they are not running and installs them with apt-get when missing.
set -euo pipefail

want_pg=0
for arg in "$@"; do
  case "$arg" in
    --postgres) want_pg=1 ;;
    *) echo "usage: $0 [--postgres]" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "installing redis-server"
  apt_install redis-server
fi
if ! redis_up; then
  echo "starting redis-server on 127.0.0.1:6379"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  logdir=/var/log/redis; [ -w "$logdir" ] || logdir=/tmp
  datadir=/var/lib/redis; [ -w "$datadir" ] || datadir=/tmp
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "$datadir" --logfile "$logdir/contactcenter-redis.log"
  for _ in $(seq 1 50); do redis_up && break; sleep 0.1; done
  redis_up || { echo "redis did not start" >&2; exit 1; }
fi

if [ "$want_pg" = 1 ]; then
  pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "installing postgresql"
    apt_install postgresql
  fi
  if ! pg_up; then
    echo "starting postgresql"
    ver=$(ls /etc/postgresql | sort -V | tail -1)
    conf=/etc/postgresql/$ver/main
    # local test server: trust on loopback, as the CI machines are configured
    if ! grep -q "contactcenter-trust" "$conf/pg_hba.conf" 2>/dev/null; then
      $SUDO sed -i '1i host all all 127.0.0.1/32 trust # contactcenter-trust' "$conf/pg_hba.conf"
      $SUDO sed -i '1i local all all trust # contactcenter-trust' "$conf/pg_hba.conf"
    fi
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || $SUDO pg_ctlcluster "$ver" main start
    for _ in $(seq 1 100); do pg_up && break; sleep 0.1; done
    pg_up || { echo "postgresql did not start" >&2; exit 1; }
  fi
fi
echo "services ready"
