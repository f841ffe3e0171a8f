#!/usr/bin/env bash
# `make demo`: the central system on its embedded PostgreSQL, a small simulated world whose
# drivers tap RFID cards (so sessions run end to end today, before the Smartcar bridge), then
# a clean stop. Both logs are console-formatted and interleaved on the terminal.
#
# Knobs (environment): DEMO_CHARGERS, DEMO_VEHICLES, DEMO_DURATION (simulated s),
# DEMO_SPEED, DEMO_SEED, CSMS_OCPP_PORT, CSMS_HTTP_PORT, CSMS_DATA_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
CHARGERS=${DEMO_CHARGERS:-4}
VEHICLES=${DEMO_VEHICLES:-8}
DURATION=${DEMO_DURATION:-2400}
SPEED=${DEMO_SPEED:-120}
SEED=${DEMO_SEED:-1}
# A database of its own, so the demo's sessions never mix with `make run`'s.
export CSMS_DATA_DIR=${CSMS_DATA_DIR:-.csms/demo}
export CSMS_OCPP_HOST=127.0.0.1 CSMS_HTTP_HOST=127.0.0.1
export CSMS_OCPP_PORT=${CSMS_OCPP_PORT:-9000} CSMS_HTTP_PORT=${CSMS_HTTP_PORT:-8080}
export CSMS_LOG_FORMAT=console CSMS_LOG_LEVEL=info
# Heartbeats every simulated 5 minutes would flood a sped-up log; the demo's chargers
# are busy enough to show they are alive.
export CSMS_HEARTBEAT_INTERVAL=${CSMS_HEARTBEAT_INTERVAL:-3600}

"$BIN/csms" serve &
csms_pid=$!
stop_csms() {
    if kill -0 "$csms_pid" 2>/dev/null; then
        kill -TERM "$csms_pid"
        wait "$csms_pid" || true
    fi
}
trap stop_csms EXIT

# Up to a minute: the first run initialises the embedded database.
"$BIN/python" - "$CSMS_HTTP_PORT" "$csms_pid" <<'EOF'
import os, sys, time
import httpx
port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("demo: the central system exited during start-up")
    try:
        if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
            sys.exit(0)
    except httpx.TransportError:
        pass
    time.sleep(0.2)
sys.exit("demo: /healthz did not answer 200 within 60 s")
EOF

# The central system answers unknown cards Invalid, and has no operator command for id tags
# yet: register the drivers' cards directly in its database.
cards=$("$BIN/python" -m simulators cards --chargers "$CHARGERS" --vehicles "$VEHICLES" \
    --seed "$SEED" --connectors 2 --dc-share 0)
# shellcheck disable=SC2086 # one argument per card
"$BIN/python" - "$CSMS_DATA_DIR" $cards <<'EOF'
import asyncio, sys
from pathlib import Path
import asyncpg
from csms.app import EMBEDDED_DATABASE
from csms.db import id_tags
from csms.db.embedded import EmbeddedPostgres

async def main() -> None:
    embedded = EmbeddedPostgres(Path(sys.argv[1]))
    embedded.start()  # joins the server the central system started
    try:
        connection = await asyncpg.connect(embedded.dsn_for(EMBEDDED_DATABASE))
        tags = sys.argv[2:]
        for tag in tags:
            await id_tags.upsert(connection, tag)
        await connection.close()
        print(f"demo: registered {len(tags)} RFID cards", file=sys.stderr)
    finally:
        embedded.close()

asyncio.run(main())
EOF

"$BIN/python" -m simulators world \
    --csms "ws://127.0.0.1:$CSMS_OCPP_PORT/ocpp" \
    --chargers "$CHARGERS" --vehicles "$VEHICLES" --connectors 2 --dc-share 0 \
    --seed "$SEED" --speed "$SPEED" --duration "$DURATION" \
    --arrivals-per-hour $((CHARGERS * 4)) --dwell 900 --rfid-share 1 \
    --meter-interval 300 --smartcar-port 0 --leave-at-end
