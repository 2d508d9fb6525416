#!/usr/bin/env bash
# `make run`: the web app in the foreground and an RQ worker (campaigns, IVR SMS, the
# sandbox's call lives) in the background; the worker stops with the server.
set -euo pipefail
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-5000}"
BIN="${BIN:-.venv/bin}"
export SANDBOX_SCENARIO="${SANDBOX_SCENARIO:-devtools/scenarios/demo.yaml}"
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://$HOST:$PORT}"

"$BIN/contactcenter" worker &
worker=$!
trap 'kill "$worker" 2>/dev/null || true; wait "$worker" 2>/dev/null || true' EXIT INT TERM

echo "health:     $PUBLIC_BASE_URL/healthz"
echo "console:    $PUBLIC_BASE_URL/console/        (demo users: contactcenter demo users)"
echo "voice URL:  $PUBLIC_BASE_URL/voice/incoming   (SMS: $PUBLIC_BASE_URL/sms/incoming)"
echo "API:        $PUBLIC_BASE_URL/api/campaigns      (token: contactcenter users token NAME)"
echo "try a call: $BIN/contactcenter simulate call --url $PUBLIC_BASE_URL --from +79161234501 --press 1"
"$BIN/contactcenter" serve --host "$HOST" --port "$PORT"
