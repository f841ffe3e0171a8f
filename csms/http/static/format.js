// How values read: every date with its time zone, energy in kWh, states as words.

const pad = (n) => String(n).padStart(2, "0");

// "UTC+01:00" for the browser's zone at that instant (DST moves it), "UTC" at zero.
export function offsetLabel(date = new Date()) {
  const minutes = -date.getTimezoneOffset();
  if (minutes === 0) return "UTC";
  const sign = minutes > 0 ? "+" : "-";
  const abs = Math.abs(minutes);
  return `UTC${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

export function zoneName() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || offsetLabel();
}

// "2026-12-01 20:15:03 UTC+01:00": unambiguous, sorts as text, no locale guessing.
export function dateTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return `${day} ${time} ${offsetLabel(d)}`;
}

export function clockTime(date) {
  return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export function ago(iso, now = Date.now()) {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

export function kWh(wh) {
  if (wh === null || wh === undefined) return "—";
  return (wh / 1000).toFixed(2) + " kWh";
}

export function percent(value) {
  return value === null || value === undefined ? "—" : Math.round(value) + " %";
}

export function count(n) {
  return Number(n || 0).toLocaleString("en");
}

// Midnight today in the browser's zone, as ISO with its offset: the operator's "today".
export function startOfToday() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  const minutes = -d.getTimezoneOffset();
  const sign = minutes >= 0 ? "+" : "-";
  const abs = Math.abs(minutes);
  const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return `${day}T00:00:00${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

// The one state an operator should see, in the server's order (csms/db/fleet.py):
// a charger that is not connected is offline, whatever its connectors last reported.
export function stateOf(charger) {
  if (!charger.connected) return "offline";
  if (charger.registration_status === "Rejected") return "rejected";
  if (charger.registration_status === "Pending") return "pending";
  const statuses = (charger.connectors || []).map((c) => c.status);
  if (statuses.includes("Faulted")) return "faulted";
  if (statuses.includes("Charging")) return "charging";
  return "online";
}
