"""The simulated world's physics and bookkeeping (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from simulators.world import (
    CHARGING,
    FULLY_CHARGED,
    NOT_CHARGING,
    Charger,
    PlugError,
    ScenarioEvent,
    UnknownCharger,
    UnknownVehicle,
    Vehicle,
    World,
    apply,
    distance_m,
    due_events,
    is_valid_vin,
    vin_check_digit,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_vehicle(**overrides: object) -> Vehicle:
    fields: dict[str, object] = {
        "vin": "5YJ3E1EA7KF000001",
        "smartcar_id": "00000000-0000-4000-8000-000000000001",
        "make": "TESLA",
        "model": "Model 3",
        "year": 2019,
        "battery_kwh": 50.0,
        "soc": 0.5,
        "charge_limit": 0.9,
        "max_ac_w": 11_000.0,
        "max_dc_w": 150_000.0,
        "efficiency": 0.9,
    }
    fields.update(overrides)
    return Vehicle(**fields)  # type: ignore[arg-type]


def small_world() -> World:
    return World(
        [make_vehicle(), make_vehicle(vin="WVGZZZE2ZMP000002", smartcar_id="id-2")],
        [Charger("CP1", 52.5, 13.4, 22_000.0, connectors=2)],
    )


def test_acceptance_is_max_ac_power_in_the_middle_of_the_battery() -> None:
    assert make_vehicle(soc=0.4).acceptance_w() == 11_000.0


def test_acceptance_is_zero_when_charging_disabled_or_at_the_limit() -> None:
    assert make_vehicle(charging_enabled=False).acceptance_w() == 0.0
    assert make_vehicle(soc=0.9, charge_limit=0.9).acceptance_w() == 0.0


def test_acceptance_tapers_near_full() -> None:
    vehicle = make_vehicle(charge_limit=1.0)
    vehicle.soc = 0.95
    ac_near_full = vehicle.acceptance_w()
    dc_near_full = vehicle.acceptance_w(dc=True)
    assert 0.3 * 11_000 <= ac_near_full < 11_000
    assert 0.1 * 150_000 <= dc_near_full < 0.5 * 150_000


def test_absorb_gains_energy_after_charging_losses() -> None:
    vehicle = make_vehicle(soc=0.5, efficiency=0.9)
    gained = vehicle.absorb(1000.0)
    assert gained == pytest.approx(900.0)
    assert vehicle.soc == pytest.approx(0.5 + 900.0 / 50_000.0)
    assert vehicle.is_charging
    assert vehicle.charge_state == NOT_CHARGING  # not plugged in: Smartcar never says CHARGING


def test_absorb_stops_at_the_charge_limit() -> None:
    vehicle = make_vehicle(soc=0.89, charge_limit=0.9)
    gained = vehicle.absorb(10_000.0)
    assert gained == pytest.approx(0.01 * 50_000.0)
    assert vehicle.soc == pytest.approx(0.9)
    assert vehicle.absorb(1000.0) == 0.0
    assert not vehicle.is_charging


def test_absorb_of_nothing_clears_is_charging() -> None:
    vehicle = make_vehicle()
    vehicle.absorb(100.0)
    assert vehicle.absorb(0.0) == 0.0
    assert not vehicle.is_charging


def test_charge_state_follows_energy_flow_and_limit() -> None:
    world = small_world()
    vehicle = world.plug_in("5YJ3E1EA7KF000001", "CP1", 1, NOW)
    assert vehicle.charge_state == NOT_CHARGING
    vehicle.absorb(500.0)
    assert vehicle.charge_state == CHARGING
    vehicle.absorb(10_000_000.0)
    vehicle.absorb(0.0)
    assert vehicle.charge_state == FULLY_CHARGED
    assert vehicle.soc_percent == pytest.approx(90.0)


def test_plug_in_occupies_the_connector_and_tells_listeners() -> None:
    world = small_world()
    seen: list[tuple[str, str, int, bool]] = []
    world.on_plug(lambda v, cp, conn, plugged: seen.append((v.vin, cp, conn, plugged)))
    vehicle = world.plug_in("5YJ3E1EA7KF000001", "CP1", 2, NOW)
    assert world.vehicle_at("CP1", 2) is vehicle
    assert world.vehicle_at("CP1", 1) is None
    assert vehicle.plugged_at == ("CP1", 2) and vehicle.plugged_since == NOW
    assert (vehicle.latitude, vehicle.longitude) == (52.5, 13.4)
    world.unplug("5YJ3E1EA7KF000001", NOW)
    assert world.vehicle_at("CP1", 2) is None
    assert seen == [
        ("5YJ3E1EA7KF000001", "CP1", 2, True),
        ("5YJ3E1EA7KF000001", "CP1", 2, False),
    ]


def test_listener_can_be_removed() -> None:
    world = small_world()
    seen: list[bool] = []
    remove = world.on_plug(lambda v, cp, conn, plugged: seen.append(plugged))
    remove()
    world.plug_in("5YJ3E1EA7KF000001", "CP1", 1, NOW)
    assert seen == []


def test_plug_in_refuses_busy_connector_double_plug_and_unknowns() -> None:
    world = small_world()
    world.plug_in("5YJ3E1EA7KF000001", "CP1", 1, NOW)
    with pytest.raises(PlugError):
        world.plug_in("WVGZZZE2ZMP000002", "CP1", 1, NOW)
    with pytest.raises(PlugError):
        world.plug_in("5YJ3E1EA7KF000001", "CP1", 2, NOW)
    with pytest.raises(PlugError):
        world.plug_in("WVGZZZE2ZMP000002", "CP1", 3, NOW)
    with pytest.raises(UnknownCharger):
        world.plug_in("WVGZZZE2ZMP000002", "CP9", 1, NOW)
    with pytest.raises(UnknownVehicle):
        world.plug_in("NOPE", "CP1", 2, NOW)
    with pytest.raises(PlugError):
        world.unplug("WVGZZZE2ZMP000002", NOW)


def test_unplug_stops_charging_and_forgets_a_remote_stop() -> None:
    world = small_world()
    vehicle = world.plug_in("5YJ3E1EA7KF000001", "CP1", 1, NOW)
    vehicle.absorb(100.0)
    vehicle.charging_enabled = False
    world.unplug(vehicle.vin, NOW)
    assert not vehicle.is_charging and vehicle.charging_enabled
    assert vehicle.plugged_at is None and vehicle.plugged_since is None


def test_generated_world_is_realistic() -> None:
    world = World.generate(chargers=40, vehicles=500, seed=3)
    vehicles = list(world.vehicles.values())
    assert len(vehicles) == 500 and len(world.chargers) == 40
    assert len(world.vehicles_by_smartcar_id) == 500
    assert all(is_valid_vin(v.vin) for v in vehicles)
    assert not any(c in v.vin for v in vehicles for c in "IOQ")
    assert all(40.0 <= v.battery_kwh <= 100.0 for v in vehicles)
    assert all(0.10 <= v.soc <= 0.70 for v in vehicles)
    assert all(0.5 <= v.charge_limit <= 1.0 for v in vehicles)
    assert len({v.make for v in vehicles}) >= 5
    # Some drivers own two cars, most own one.
    assert 300 < len({v.owner_id for v in vehicles}) < 500


def test_generated_chargers_cluster_in_sites() -> None:
    world = World.generate(chargers=16, vehicles=1, seed=1)
    first, second = world.charger("CP00001"), world.charger("CP00002")
    assert distance_m(first.latitude, first.longitude, second.latitude, second.longitude) < 200
    assert all(c.connectors >= 1 and c.max_power_w >= 11_000 for c in world.chargers.values())


def test_generation_is_reproducible_by_seed() -> None:
    one = World.generate(chargers=5, vehicles=20, seed=42)
    two = World.generate(chargers=5, vehicles=20, seed=42)
    other = World.generate(chargers=5, vehicles=20, seed=43)
    assert list(one.vehicles) == list(two.vehicles)
    assert list(one.vehicles) != list(other.vehicles)


def test_vin_check_digit_matches_a_known_vin() -> None:
    # 1M8GDM9AXKP042788 is the textbook example with check digit X.
    assert vin_check_digit("1M8GDM9AXKP042788") == "X"
    assert is_valid_vin("1M8GDM9AXKP042788")
    assert not is_valid_vin("1M8GDM9A1KP042788")


def test_scenario_events_apply_in_time_order() -> None:
    world = small_world()
    events = [
        ScenarioEvent(at=30, action="unplug", vin="5YJ3E1EA7KF000001"),
        ScenarioEvent(
            at=10, action="plug_in", vin="5YJ3E1EA7KF000001", charger_id="CP1", connector_id=1
        ),
        ScenarioEvent(at=20, action="set_soc", vin="5YJ3E1EA7KF000001", value=0.8),
    ]
    assert [e.at for e in due_events(events, 0, 20)] == [10, 20]
    assert [e.at for e in due_events(events, 20, 60)] == [30]
    for event in due_events(events, 0, 20):
        apply(world, event, NOW)
    vehicle = world.vehicle("5YJ3E1EA7KF000001")
    assert vehicle.plugged_at == ("CP1", 1) and vehicle.soc == 0.8
    with pytest.raises(ValueError):
        apply(world, ScenarioEvent(at=0, action="fly", vin=vehicle.vin, value=1.0), NOW)
