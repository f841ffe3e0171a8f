// One transaction: power and energy over time from the charger's meter values, SoC from
// the bridge's samples (and the charger's own, where it sends them), and the
// reconciliation and the bill side by side.

import { api } from "./api.js";
import { el, section } from "./dom.js";
import { dateTime, kWh, percent } from "./format.js";
import { lineChart } from "./chart.js";
import { chargerHref, statePill } from "./widgets.js";

const REGISTER = "Energy.Active.Import.Register";
const POWER = "Power.Active.Import";

// Samples of one measurand (the whole-meter value: no phase) as chart points.
function samples(meterValues, measurand, scale = 1, offset = 0) {
  return meterValues
    .filter((m) => m.measurand === measurand && m.phase === null && m.value !== null)
    .map((m) => ({ t: new Date(m.sampled_at).getTime(), v: (m.value - offset) * scale }))
    .sort((a, b) => a.t - b.t);
}

// Power from the charger when it reports it; otherwise the slope of the energy register.
export function powerSeries(meterValues) {
  const reported = samples(meterValues, POWER, 1 / 1000);
  if (reported.length) return { points: reported, name: "power (charger)" };
  const energy = samples(meterValues, REGISTER);
  const points = [];
  for (let i = 1; i < energy.length; i++) {
    const hours = (energy[i].t - energy[i - 1].t) / 3_600_000;
    if (hours > 0) points.push({ t: energy[i].t, v: Math.max(0, (energy[i].v - energy[i - 1].v) / hours / 1000) });
  }
  return { points, name: "power (from energy)" };
}

export function sessionView(transactionId) {
  const facts = el("dl", { id: "transaction-facts", class: "details" });
  const charts = el("div", { id: "charts", class: "charts" });
  const reconciliation = el("div", { id: "reconciliation", class: "panel" });
  const bill = el("div", { id: "bill", class: "panel" });
  const root = el("div", { class: "session-page", "data-transaction-id": transactionId },
    el("h2", { class: "page-title" }, `Transaction ${transactionId}`, el("span", { id: "transaction-state" })),
    section("Transaction", facts),
    section("Over time", charts),
    el("div", { class: "columns" },
      section("Reconciliation", reconciliation),
      section("Bill", bill)));

  return {
    root,
    title: `Transaction ${transactionId}`,
    async refresh() {
      const t = await api("/api/transactions/" + encodeURIComponent(transactionId));
      const s = t.session;
      root.querySelector("#transaction-state").replaceChildren(statePill(t.active ? "charging" : "stopped"));
      facts.replaceChildren(...factRows(t));
      const power = powerSeries(t.meter_values);
      const soc = [{ name: "SoC (car, bridge)", key: "car", points: socPoints(s) }];
      const chargerSoc = samples(t.meter_values, "SoC");
      if (chargerSoc.length) soc.push({ name: "SoC (charger)", key: "charger", points: chargerSoc });
      // One time axis for all three: from the start to the stop (or now, while open).
      const span = [new Date(t.start_timestamp).getTime(),
        t.stop_timestamp ? new Date(t.stop_timestamp).getTime() : Date.now()];
      charts.replaceChildren(
        lineChart({ title: "Power", unit: "kW", digits: 2, span, series: [{ ...power, key: "power" }] }),
        lineChart({
          title: "Energy", unit: "kWh", digits: 2, span,
          series: [{ name: "energy delivered", key: "energy", points: energyPoints(t) }],
        }),
        lineChart({ title: "State of charge", unit: "%", digits: 0, yMax: 100, span, series: soc }),
      );
      reconciliation.replaceChildren(...reconciliationRows(s));
      bill.replaceChildren(...billRows(s));
    },
  };
}

function energyPoints(t) {
  const points = samples(t.meter_values, REGISTER, 1 / 1000, t.meter_start_wh);
  const start = { t: new Date(t.start_timestamp).getTime(), v: 0 };
  if (!points.length || points[0].t > start.t) points.unshift(start);
  if (t.meter_stop_wh !== null && t.stop_timestamp) {
    points.push({ t: new Date(t.stop_timestamp).getTime(), v: (t.meter_stop_wh - t.meter_start_wh) / 1000 });
  }
  return points;
}

function socPoints(session) {
  if (!session) return [];
  return session.soc_samples.map((p) => ({ t: new Date(p.sampled_at).getTime(), v: p.soc_percent }));
}

function dl(pairs) {
  return [el("dl", { class: "details" }, pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v ?? "—" })]))];
}

function factRows(t) {
  const pairs = [
    ["Charger", null],
    ["Connector", t.connector_id],
    ["idTag", t.id_tag],
    ["Started", dateTime(t.start_timestamp)],
    ["Stopped", t.active ? "still open" : dateTime(t.stop_timestamp)],
    ["Meter", `${t.meter_start_wh} Wh → ${t.meter_stop_wh ?? "…"} Wh`],
    ["Energy", t.active ? "running" : kWh(t.energy_wh)],
    ["Stop reason", t.stop_reason || "—"],
  ];
  if (t.meter_anomaly) pairs.push(["Meter anomaly", "the meter went backwards or reset: no energy is derived"]);
  if (t.session) pairs.push(["Vehicle", `VIN ${t.session.vin} · session ${t.session.state}`]);
  return pairs.flatMap(([k, v]) => [
    el("dt", { text: k }),
    k === "Charger"
      ? el("dd", {}, el("a", { href: chargerHref(t.charge_point_id), text: t.charge_point_id }))
      : el("dd", { text: v ?? "—" }),
  ]);
}

function reconciliationRows(s) {
  if (!s) return [el("p", { class: "muted", text: "No plug-and-charge session: the bridge did not start this transaction, so there is no battery reading to reconcile with." })];
  const flags = s.reconciliation_flags && s.reconciliation_flags.length ? s.reconciliation_flags.join(", ") : "none";
  return dl([
    ["Charger metered", kWh(s.grid_energy_wh)],
    ["Battery gained", kWh(s.battery_energy_wh)],
    ["Efficiency", s.efficiency === null ? "—" : Math.round(Number(s.efficiency) * 1000) / 10 + " %"],
    ["SoC", `${percent(s.start_soc_percent)} → ${percent(s.end_soc_percent ?? s.last_soc_percent)} (target ${percent(s.target_soc_percent)})`],
    ["Battery capacity", kWh(s.battery_capacity_wh)],
    ["Flags", flags],
    ["Session", `${s.state}${s.stop_reason ? " · " + s.stop_reason : ""}`],
    ["Ended", s.ended_at ? dateTime(s.ended_at) : "still open"],
  ]);
}

// Money is a decimal string from the server: never through a float; only the zeros
// beyond the cents go ("0.3000" reads "0.30", "0.2750" reads "0.275").
function decimal(value) {
  return value === null ? "—" : String(value).replace(/(\.\d{2}\d*?)0+$/, "$1");
}

function billRows(s) {
  if (!s) return [el("p", { class: "muted", text: "No bill: only plug-and-charge sessions are billed to an account." })];
  if (s.bill_amount === null) return [el("p", { class: "muted", text: "Not billed yet: the bill is made when the session is reconciled." })];
  return dl([
    ["Billed energy", kWh(s.bill_energy_wh)],
    ["Basis", s.bill_basis === "battery" ? "battery (what the car gained)" : "charger (what was metered)"],
    ["Tariff", `${decimal(s.tariff_per_kwh)} ${s.currency} / kWh`],
    ["Amount", `${s.bill_amount} ${s.currency}`],
    ["Account", s.account_id],
  ]);
}
