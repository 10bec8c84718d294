// Time-series charts on uPlot (https://github.com/leeoniya/uPlot): small, canvas based,
// built for streaming series; time axis in UTC, x in seconds since the epoch.
import uPlot from "/vendor/uPlot.esm.js";
import { h } from "/static/format.js";

export const COLORS = {
  power: "#1f6feb", target: "#d97706", baseline: "#6b7280", frequency: "#7c3aed",
  soc: "#059669", faults: "#dc2626", commanded: "#d97706", measured: "#1f6feb",
};
export const PALETTE = ["#1f6feb", "#059669", "#d97706", "#7c3aed", "#dc2626", "#0891b2", "#be185d"];

const utc = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
// x-axis labels: 24 h UTC clock; seconds on spans under an hour, tenths under 10 s
function timeLabels(u, splits) {
  const span = u.scales.x.max - u.scales.x.min;
  const end = span < 10 ? 21 : span < 3600 ? 19 : 16;
  return splits.map((s) => new Date(s * 1e3).toISOString().slice(11, end));
}

// A chart card: title, unit, a uPlot that follows its container's width.
export class TimeChart {
  constructor(parent, { title, unit, series, height = 220, digits = 2, range = null, stepped = [] }) {
    this.unit = unit;
    this.card = h("section", { class: "card chart" },
      h("h3", {}, title, h("span", { class: "unit" }, unit)));
    this.body = h("div", { class: "chart-body" });
    this.card.append(this.body);
    parent.append(this.card);
    const fmt = (u, v) => (v === null || v === undefined ? "–" : v.toFixed(digits));
    const opts = {
      width: Math.max(300, this.body.clientWidth || 600),
      height,
      tzDate: utc,
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      scales: { x: { time: true }, y: range ? { range } : { auto: true } },
      axes: [
        { stroke: "#4b5563", grid: { stroke: "#eef0f3" }, values: timeLabels, space: 90 },
        { stroke: "#4b5563", grid: { stroke: "#eef0f3" }, size: 64,
          values: (u, splits) => splits.map((v) => v.toFixed(digits)) },
      ],
      series: [
        { value: (u, v) => (v ? utc(v).toISOString().slice(11, 19) + " UTC" : "–") },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: s.stroke,
          width: s.width || 2,
          dash: s.dash,
          spanGaps: s.spanGaps ?? false,
          points: { show: false },
          value: fmt,
          paths: stepped.includes(i) ? uPlot.paths.stepped({ align: 1 }) : undefined,
        })),
      ],
    };
    this.plot = new uPlot(opts, [[], ...series.map(() => [])], this.body);
    this.resize = new ResizeObserver(() => {
      const w = this.body.clientWidth;
      if (w > 0 && Math.abs(w - this.plot.width) > 2) this.plot.setSize({ width: w, height });
    });
    this.resize.observe(this.body);
  }

  setData(xs, ...ys) {
    this.plot.setData([xs, ...ys]);
    if (this.xRange) {
      this.plot.setScale("x", { min: this.xRange[0], max: this.xRange[1] });
      [this.body.dataset.xMin, this.body.dataset.xMax] = this.xRange;  // what the axis spans
    }
  }

  // A fixed time axis [min, max] (seconds since the epoch) instead of the data's span.
  setXRange(min, max) {
    this.xRange = [min, max];
  }

  destroy() {
    this.resize.disconnect();
    this.plot.destroy();
  }
}

// Keeps points by time (us), newest window only; merge() replaces points with the same t.
export class Series {
  constructor() {
    this.byT = new Map();
  }
  merge(points) {
    for (const p of points) this.byT.set(p.t, p);
  }
  prune(oldestUs) {
    for (const t of this.byT.keys()) if (t < oldestUs) this.byT.delete(t);
  }
  sorted() {
    return [...this.byT.values()].sort((a, b) => a.t - b.t);
  }
  clear() {
    this.byT.clear();
  }
}

// Times (us) of sparse samples (verdicts exist only while something is judged), with a gap
// time added wherever samples are more than maxGapUs apart, so the chart breaks its lines
// there instead of drawing a straight line across the silence. Returns [times, isGap].
export function withGaps(times, maxGapUs = 3e6) {
  const out = [], gap = [];
  for (let i = 0; i < times.length; i++) {
    if (i > 0 && times[i] - times[i - 1] > maxGapUs) { out.push(times[i - 1] + 1e6); gap.push(true); }
    out.push(times[i]);
    gap.push(false);
  }
  return [out, gap];
}
