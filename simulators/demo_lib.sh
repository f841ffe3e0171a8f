# Shared by `make demo` and `make demo-bridge` (sourced, not run): a demo never touches what
# belongs to the caller. Nothing CSMS_* / SMARTCAR_* from the environment reaches its server,
# its database lives in a scratch directory it creates (and alone deletes), and it listens on
# free ports, so it runs beside `make run` and never writes into a real database.
#
# Knobs: DEMO_DATABASE_URL (use this PostgreSQL database instead of an embedded one; tests),
# DEMO_OCPP_PORT, DEMO_HTTP_PORT, DEMO_SMARTCAR_PORT (default: free ports), BIN.

BIN=${BIN:-.venv/bin}

# Inherited settings are the caller's (their real server's): drop every one of them.
while read -r name; do
    unset "$name"
done < <(compgen -e | grep -E '^(CSMS|SMARTCAR)_' || true)

DEMO_SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/csms-demo.XXXXXX")
# As root, the embedded PostgreSQL runs as its own user, which must reach its folder.
chmod 755 "$DEMO_SCRATCH"
if [[ -n "${DEMO_DATABASE_URL:-}" ]]; then
    export CSMS_DATABASE_URL=$DEMO_DATABASE_URL
else
    export CSMS_DATA_DIR=$DEMO_SCRATCH/data
fi

# Three ports the OS says are free right now (a tiny race, acceptable for a demo).
read -r _free_ocpp _free_http _free_smartcar < <("$BIN/python" - <<'PY'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
export CSMS_OCPP_HOST=127.0.0.1 CSMS_HTTP_HOST=127.0.0.1
export CSMS_OCPP_PORT=${DEMO_OCPP_PORT:-$_free_ocpp} CSMS_HTTP_PORT=${DEMO_HTTP_PORT:-$_free_http}
DEMO_SMARTCAR_PORT=${DEMO_SMARTCAR_PORT:-$_free_smartcar}
export CSMS_API_URL="http://127.0.0.1:$CSMS_HTTP_PORT"
export CSMS_LOG_FORMAT=console CSMS_LOG_LEVEL=info
# Heartbeats every simulated 5 minutes would flood a sped-up log.
export CSMS_HEARTBEAT_INTERVAL=3600

demo_pids=()
demo_cleanup() {
    local pid
    for pid in "${demo_pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            wait "$pid" || true
        fi
    done
    # Only ever the directory this script created itself.
    rm -rf "$DEMO_SCRATCH"
}
trap demo_cleanup EXIT

demo_wait_for() {  # URL WHAT [PID]: up to 60 s until the URL answers (the first run is slow)
    "$BIN/python" - "$1" "$2" "${3:-0}" <<'PY'
import os, sys, time
import httpx
url, what, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    if pid:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            sys.exit(f"demo: {what} exited during start-up")
    try:
        if httpx.get(url, timeout=1).status_code < 500:
            sys.exit(0)
    except httpx.TransportError:
        pass
    time.sleep(0.2)
sys.exit(f"demo: {what} did not answer within 60 s")
PY
}

demo_start_csms() {  # the central system, up and healthy, with an operator token in the CLI's env
    "$BIN/csms" serve &
    demo_pids+=($!)
    demo_wait_for "http://127.0.0.1:$CSMS_HTTP_PORT/healthz" "the central system" "$!"
    CSMS_API_TOKEN=$("$BIN/csms" token create "demo-$$-$(date +%s)" 2>/dev/null)
    export CSMS_API_TOKEN
}
