#!/usr/bin/env bash
# `make demo-bridge`: the whole plug-and-charge story on one machine, with no app and no card.
# The central system (embedded PostgreSQL, bridge on) talks to a simulated world: chargers
# over OCPP and a Smartcar fake over HTTP, sharing the same cars. A driver links all cars
# once through Smartcar Connect; then cars arrive, plug in, and the bridge matches them by
# VIN, starts, monitors, stops at 80 % and bills. The log is console-formatted.
#
# Knobs (environment): DEMO_CHARGERS, DEMO_VEHICLES, DEMO_SPEED, DEMO_SEED, DEMO_DURATION
# (simulated s), and those of demo_lib.sh (a scratch database and free ports every run).
set -euo pipefail
cd "$(dirname "$0")/.."

CHARGERS=${DEMO_CHARGERS:-3}
VEHICLES=${DEMO_VEHICLES:-3}
SPEED=${DEMO_SPEED:-600}
SEED=${DEMO_SEED:-4}
# Simulated seconds: eight hours, enough to charge every car to 80 %.
DURATION=${DEMO_DURATION:-28800}
# shellcheck source=simulators/demo_lib.sh
source simulators/demo_lib.sh
SC_PORT=$DEMO_SMARTCAR_PORT

# The bridge, pointed at the fake. Demo credentials only: never reuse them.
export SMARTCAR_CLIENT_ID=demo-client SMARTCAR_CLIENT_SECRET=demo-client-secret
export SMARTCAR_REDIRECT_URI="http://127.0.0.1:$CSMS_HTTP_PORT/smartcar/callback"
export SMARTCAR_API_URL="http://127.0.0.1:$SC_PORT/v2.0"
export SMARTCAR_AUTH_URL="http://127.0.0.1:$SC_PORT" SMARTCAR_CONNECT_URL="http://127.0.0.1:$SC_PORT"
# Vehicles API v3 (the default SMARTCAR_API_VERSION): vehicle, management and app-token hosts.
export SMARTCAR_V3_API_URL="http://127.0.0.1:$SC_PORT/v3"
export SMARTCAR_MANAGEMENT_API_URL="http://127.0.0.1:$SC_PORT/management/v3"
export SMARTCAR_IAM_URL="http://127.0.0.1:$SC_PORT"
export CSMS_SECRET_KEY=demo-secret-key-not-for-production
# Real seconds; at DEMO_SPEED 600 that is a read every 10 simulated minutes.
export CSMS_BRIDGE_POLL_INTERVAL=1
# The fake applies Smartcar's limits on the simulated clock (2 calls per simulated minute
# for the application): the bridge's own bucket follows the same clock.
export SMARTCAR_RATE_REFILL_PER_MINUTE=$((2 * SPEED))
# Cars arrive an hour apart, each alone at its charger: no neighbour's Preparing to wait for
# (real seconds; the default 3 s is two simulated hours at speed 2400).
export CSMS_BRIDGE_MATCH_SETTLE=${CSMS_BRIDGE_MATCH_SETTLE:-0.5}

demo_start_csms

# Cars arrive from simulated hour 1 on, one an hour (6 s apart at speed 600): each plug-in is
# decided before the next, at a site where all chargers stand within matching distance.
scenario=$DEMO_SCRATCH/scenario.json
"$BIN/python" - "$CHARGERS" "$VEHICLES" "$SEED" >"$scenario" <<'PY'
import json, sys
from simulators.world_cable import build_world
chargers, vehicles, seed = (int(a) for a in sys.argv[1:])
world = build_world(chargers, vehicles, seed, 1, 0.0)
ids = list(world.chargers)
events = [
    {"at": 3600 + 3600 * n, "action": "plug_in", "vehicle": n, "charger_id": ids[n % len(ids)]}
    for n in range(vehicles)
]
print(json.dumps({"events": events}))
PY

"$BIN/python" -m simulators world --csms "ws://127.0.0.1:$CSMS_OCPP_PORT/ocpp" \
    --chargers "$CHARGERS" --vehicles "$VEHICLES" --connectors 1 --dc-share 0 \
    --seed "$SEED" --speed "$SPEED" --duration "$DURATION" --arrivals-per-hour 0 \
    --rfid-share 0 --meter-interval 300 --smartcar-port "$SC_PORT" \
    --client-id "$SMARTCAR_CLIENT_ID" --client-secret "$SMARTCAR_CLIENT_SECRET" \
    --redirect-uri "$SMARTCAR_REDIRECT_URI" --login-all --scenario "$scenario" &
demo_pids+=($!)
world_pid=$!
demo_wait_for "http://127.0.0.1:$SC_PORT/v2.0/user" "the Smartcar fake" "$world_pid"

# An account with valid payment, and the driver's Connect flow.
"$BIN/python" - "$CSMS_HTTP_PORT" "$CSMS_API_TOKEN" <<'PY'
import sys
import httpx
port, token = sys.argv[1], sys.argv[2]
api = httpx.Client(
    base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
)
account = api.post(
    "/api/accounts", json={"name": "Demo driver", "payment_status": "valid", "tariff_per_kwh": "0.35"}
).json()
page = api.get("/smartcar/connect", params={"account_id": account["id"]}, follow_redirects=True)
print(f"demo: Connect says {page.status_code}: {page.text.split('<p>')[-1].split('</p>')[0]}",
      file=sys.stderr)
PY

wait "$world_pid" || true
"$BIN/python" - "$CSMS_HTTP_PORT" "$CSMS_API_TOKEN" <<'PY'
import sys
import httpx
port, token = sys.argv[1], sys.argv[2]
api = httpx.Client(
    base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
)
sessions = api.get("/api/sessions", params={"limit": 50}).json()["items"]
print("\nplug-and-charge sessions:")
for s in sessions:
    print(
        f"  {s['charge_point_id']}  car …{s['vin'][-6:]}  {s['state']:<10} "
        f"SoC {s.get('start_soc_percent') or 0:.0f}→{s.get('end_soc_percent') or 0:.0f} %  "
        f"grid {s.get('grid_energy_wh') or 0} Wh  battery {s.get('battery_energy_wh') or 0} Wh  "
        f"bill {s.get('bill_amount')} {s.get('currency') or ''} ({s.get('bill_basis')})"
    )
PY
