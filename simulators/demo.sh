#!/usr/bin/env bash
# `make demo`: the central system on a scratch embedded PostgreSQL, a small simulated world
# whose drivers tap RFID cards (registered with `csms idtag add`), then a clean stop. Both
# logs are console-formatted and interleaved on the terminal. See demo_lib.sh for why
# nothing of the caller's (settings, data directory, ports) is used.
#
# Knobs (environment): DEMO_CHARGERS, DEMO_VEHICLES, DEMO_DURATION (simulated s),
# DEMO_SPEED, DEMO_SEED, and those of demo_lib.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

CHARGERS=${DEMO_CHARGERS:-4}
VEHICLES=${DEMO_VEHICLES:-8}
DURATION=${DEMO_DURATION:-2400}
SPEED=${DEMO_SPEED:-120}
SEED=${DEMO_SEED:-1}
# shellcheck source=simulators/demo_lib.sh
source simulators/demo_lib.sh

demo_start_csms

# The central system answers unknown cards Invalid: register the drivers' cards.
cards=$("$BIN/python" -m simulators cards --chargers "$CHARGERS" --vehicles "$VEHICLES" \
    --seed "$SEED" --connectors 2 --dc-share 0)
# shellcheck disable=SC2086 # one argument per card
"$BIN/csms" idtag add $cards >/dev/null
echo "demo: registered $(wc -w <<<"$cards") RFID cards" >&2

"$BIN/python" -m simulators world \
    --csms "ws://127.0.0.1:$CSMS_OCPP_PORT/ocpp" \
    --chargers "$CHARGERS" --vehicles "$VEHICLES" --connectors 2 --dc-share 0 \
    --seed "$SEED" --speed "$SPEED" --duration "$DURATION" \
    --arrivals-per-hour $((CHARGERS * 4)) --dwell 900 --rfid-share 1 \
    --meter-interval 300 --smartcar-port -1 --leave-at-end
