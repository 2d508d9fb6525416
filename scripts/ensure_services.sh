#!/usr/bin/env bash
# Make sure Redis (and, with --postgres, PostgreSQL) answer on 127.0.0.1, that espeak-ng
# (the default TTS_COMMAND: the prompts of barge-in steps, docs/speech.md) and graphviz (the
# console's flow graphs) are installed and,
# with --browser, Debian's chromium (the console's browser tests drive it through Playwright).
# Starts them when they are not running. It CHANGES THE MACHINE when needed, and says so
# before each change: installs redis-server / postgresql / espeak-ng / graphviz / chromium with apt-get
# (sudo) when missing, and adds two `trust` lines (local socket and 127.0.0.1) to PostgreSQL's
# pg_hba.conf. --dry-run prints what it would change and changes nothing.
set -euo pipefail

want_pg=0
want_browser=0
dry=0
for arg in "$@"; do
  case "$arg" in
    --postgres) want_pg=1 ;;
    --browser) want_browser=1 ;;
    --dry-run) dry=1 ;;
    *) echo "usage: $0 [--postgres] [--browser] [--dry-run]" >&2; exit 2 ;;
  esac
done

# Say what is about to change; in a dry run, only say it.
change() {
  echo "ensure_services: $*"
  [ "$dry" = 0 ]
}

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

apt_updated=0
apt_install() {
  change "installing $* with ${SUDO:+sudo }apt-get (system packages)" || return 0
  if [ "$apt_updated" = 0 ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

# Optional: without it the app runs, and barge-in steps fall back to prompts Twilio plays.
if ! command -v espeak-ng >/dev/null 2>&1; then
  apt_install espeak-ng \
    || echo "ensure_services: espeak-ng not installed; barge-in steps will fall back (docs/speech.md)" >&2
fi
# Optional: the console's flow page draws graphs with Graphviz's dot (without it, text only).
if ! command -v dot >/dev/null 2>&1; then
  apt_install graphviz \
    || echo "ensure_services: graphviz not installed; the console shows flows as text" >&2
fi

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  apt_install redis-server
fi
if ! redis_up && change "starting redis-server on 127.0.0.1:6379"; then
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
    apt_install postgresql
  fi
  if ! pg_up; then
    ver=$(ls "${PG_ETC:-/etc/postgresql}" 2>/dev/null | sort -V | tail -1 || true)
    conf=${PG_ETC:-/etc/postgresql}/${ver:-VERSION}/main
    # local test server: trust on loopback, as the CI machines are configured
    if ! grep -q "contactcenter-trust" "$conf/pg_hba.conf" 2>/dev/null \
      && change "adding to $conf/pg_hba.conf (no password for local connections):" \
        "'local all all trust' and 'host all all 127.0.0.1/32 trust'"; then
      $SUDO sed -i '1i host all all 127.0.0.1/32 trust # contactcenter-trust' "$conf/pg_hba.conf"
      $SUDO sed -i '1i local all all trust # contactcenter-trust' "$conf/pg_hba.conf"
    fi
  fi
  if ! pg_up && change "starting postgresql $ver"; then
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || $SUDO pg_ctlcluster "$ver" main start
    for _ in $(seq 1 100); do pg_up && break; sleep 0.1; done
    pg_up || { echo "postgresql did not start" >&2; exit 1; }
  fi
fi
if [ "$want_browser" = 1 ] && [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  # the browser tests use this one (Playwright's executable_path), never a downloaded browser
  apt_install chromium
fi
if [ "$dry" = 1 ]; then echo "dry run: nothing changed"; else echo "services ready"; fi
