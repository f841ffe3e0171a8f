"""Pure OCPP 1.6 configuration store of a simulated charge point (spec section 9)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["int", "bool", "csv", "str"]


@dataclass(slots=True, frozen=True)
class KeySpec:
    kind: Kind
    readonly: bool
    default: str


# The Core / Local Auth List / Smart Charging keys of OCPP 1.6 section 9, with the
# readonly flags the spec gives them.
STANDARD_KEYS: dict[str, KeySpec] = {
    "AllowOfflineTxForUnknownId": KeySpec("bool", False, "false"),
    "AuthorizationCacheEnabled": KeySpec("bool", False, "true"),
    "AuthorizeRemoteTxRequests": KeySpec("bool", False, "false"),
    "ClockAlignedDataInterval": KeySpec("int", False, "0"),
    "ConnectionTimeOut": KeySpec("int", False, "60"),
    "ConnectorPhaseRotation": KeySpec("csv", False, "0.RST"),
    "GetConfigurationMaxKeys": KeySpec("int", True, "50"),
    "HeartbeatInterval": KeySpec("int", False, "300"),
    "LocalAuthorizeOffline": KeySpec("bool", False, "true"),
    "LocalPreAuthorize": KeySpec("bool", False, "false"),
    "MeterValuesAlignedData": KeySpec("csv", False, "Energy.Active.Import.Register"),
    "MeterValuesSampledData": KeySpec(
        "csv", False, "Energy.Active.Import.Register,Power.Active.Import,Current.Import,SoC"
    ),
    "MeterValuesSampledDataMaxLength": KeySpec("int", True, "8"),
    "MeterValueSampleInterval": KeySpec("int", False, "60"),
    "NumberOfConnectors": KeySpec("int", True, "1"),
    "ResetRetries": KeySpec("int", False, "1"),
    "StopTransactionOnEVSideDisconnect": KeySpec("bool", False, "true"),
    "StopTransactionOnInvalidId": KeySpec("bool", False, "true"),
    "StopTxnAlignedData": KeySpec("csv", False, ""),
    "StopTxnSampledData": KeySpec("csv", False, "Energy.Active.Import.Register"),
    "SupportedFeatureProfiles": KeySpec(
        "csv",
        True,
        "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger",
    ),
    "TransactionMessageAttempts": KeySpec("int", False, "3"),
    "TransactionMessageRetryInterval": KeySpec("int", False, "30"),
    "UnlockConnectorOnEVSideDisconnect": KeySpec("bool", False, "true"),
    "WebSocketPingInterval": KeySpec("int", False, "0"),
    "LocalAuthListEnabled": KeySpec("bool", False, "true"),
    "LocalAuthListMaxLength": KeySpec("int", True, "100"),
    "SendLocalListMaxLength": KeySpec("int", True, "100"),
    "ChargeProfileMaxStackLevel": KeySpec("int", True, "10"),
    "ChargingScheduleAllowedChargingRateUnit": KeySpec("csv", True, "Current,Power"),
    "ChargingScheduleMaxPeriods": KeySpec("int", True, "24"),
    "MaxChargingProfilesInstalled": KeySpec("int", True, "10"),
    "ReserveConnectorZeroSupported": KeySpec("bool", True, "false"),
}

ChangeStatus = Literal["Accepted", "Rejected", "NotSupported"]


class ConfigStore:
    """Key/value store with 1.6 semantics: readonly keys reject, unknown keys are NotSupported."""

    __slots__ = ("_values",)

    def __init__(self, overrides: dict[str, str] | None = None) -> None:
        self._values = {key: spec.default for key, spec in STANDARD_KEYS.items()}
        for key, value in (overrides or {}).items():
            if key not in STANDARD_KEYS:
                raise KeyError(key)
            self._values[key] = value

    def get(self, key: str) -> str:
        return self._values[key]

    def get_int(self, key: str) -> int:
        return int(self._values[key])

    def get_bool(self, key: str) -> bool:
        return self._values[key].lower() == "true"

    def get_csv(self, key: str) -> list[str]:
        return [item.strip() for item in self._values[key].split(",") if item.strip()]

    def entries(self, keys: list[str] | None) -> tuple[list[dict[str, object]], list[str]]:
        """GetConfiguration answer: (configurationKey list, unknownKey list)."""
        wanted = keys if keys else list(self._values)
        known: list[dict[str, object]] = []
        unknown: list[str] = []
        for key in wanted:
            if key in self._values:
                readonly = STANDARD_KEYS[key].readonly
                known.append({"key": key, "readonly": readonly, "value": self._values[key]})
            else:
                unknown.append(key)
        return known, unknown

    def change(self, key: str, value: str) -> ChangeStatus:
        """ChangeConfiguration semantics (OCPP 1.6 section 5.3)."""
        spec = STANDARD_KEYS.get(key)
        if spec is None:
            return "NotSupported"
        if spec.readonly or not _valid(spec.kind, value):
            return "Rejected"
        self._values[key] = value.lower() if spec.kind == "bool" else value
        return "Accepted"


def _valid(kind: Kind, value: str) -> bool:
    if kind == "int":
        try:
            return int(value) >= 0
        except ValueError:
            return False
    if kind == "bool":
        return value.lower() in ("true", "false")
    return True
