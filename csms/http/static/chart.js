// Small time-series line charts as SVG, written here rather than vendored: a session
// chart needs a time axis, a value axis and a few lines, which is ~100 lines of code,
// and SVG nodes are styled by dashboard.css (the page's CSP allows no inline styles,
// which rules out most canvas libraries' injected styles) and readable in tests.

import { svg, el } from "./dom.js";
import { clockTime, offsetLabel } from "./format.js";

const W = 640;
const H = 220;
const PAD = { left: 52, right: 16, top: 12, bottom: 34 };

// 1, 2, 2.5 or 5 times a power of ten: ticks a person reads at a glance.
function niceStep(span, count) {
  const raw = span / Math.max(count, 1);
  const power = Math.pow(10, Math.floor(Math.log10(raw || 1)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

function timeTicks(t0, t1) {
  const minute = 60_000;
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 240, 360, 720, 1440].map((m) => m * minute);
  const step = steps.find((s) => (t1 - t0) / s <= 6) || steps[steps.length - 1];
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  return ticks;
}

// series: [{ name, key, points: [{ t: ms, v: number }] }]; `unit` labels the value axis;
// `span` ([t0, t1] in ms) gives charts shown together the same time axis.
export function lineChart({ title, unit, series, yMax = null, digits = 1, span = null }) {
  const all = series.flatMap((s) => s.points);
  const figure = el("figure", { class: "chart", "data-chart": title });
  const legend = el("figcaption", {}, el("strong", { text: title }));
  for (const s of series) {
    const last = s.points.length ? s.points[s.points.length - 1].v : null;
    legend.append(
      el("span", { class: "legend legend-" + s.key, "data-points": s.points.length },
        `${s.name}${last === null ? "" : ": " + last.toFixed(digits) + " " + unit}`),
    );
  }
  figure.append(legend);
  if (!all.length) {
    figure.append(el("p", { class: "empty", text: "no samples yet" }));
    return figure;
  }
  let t0 = Math.min(...all.map((p) => p.t), span ? span[0] : Infinity);
  let t1 = Math.max(...all.map((p) => p.t), span ? span[1] : -Infinity);
  if (t1 === t0) { t0 -= 60_000; t1 += 60_000; }
  const vMax = yMax ?? Math.max(...all.map((p) => p.v), 0);
  const vMin = Math.min(0, ...all.map((p) => p.v));
  const step = niceStep(vMax - vMin || 1, 4);
  const top = yMax ?? (Math.ceil(vMax / step) * step || step);
  const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - ((v - vMin) / (top - vMin)) * (H - PAD.top - PAD.bottom);

  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  for (let v = vMin; v <= top + 1e-9; v += step) {
    chart.append(
      svg("line", { class: "grid", x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }),
      svg("text", { class: "tick", x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" },
        Number(v.toFixed(2)).toString()),
    );
  }
  for (const t of timeTicks(t0, t1)) {
    chart.append(
      svg("line", { class: "grid", x1: x(t), x2: x(t), y1: PAD.top, y2: H - PAD.bottom }),
      svg("text", { class: "tick", x: x(t), y: H - PAD.bottom + 14, "text-anchor": "middle" },
        clockTime(new Date(t))),
    );
  }
  chart.append(
    svg("text", { class: "axis", x: W - PAD.right, y: H - 4, "text-anchor": "end" },
      `time (${offsetLabel(new Date(t1))})`),
    svg("text", { class: "axis", x: 4, y: PAD.top + 2 }, unit),
  );
  for (const s of series) {
    if (!s.points.length) continue;
    const d = s.points
      .map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`)
      .join(" ");
    chart.append(svg("path", { class: "line line-" + s.key, d, "data-series": s.name }));
    if (s.points.length === 1) {
      const p = s.points[0];
      chart.append(svg("circle", { class: "dot-" + s.key, cx: x(p.t), cy: y(p.v), r: 3 }));
    }
  }
  figure.append(chart);
  return figure;
}
