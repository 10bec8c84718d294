// Fleet view: grid frequency, fleet power against target and baseline, per product the
// armed capacity and the delivered response, the per-OEM split; the last 15 minutes.
import { COLORS, PALETTE, Series, TimeChart, withGaps } from "/static/charts.js";
import { badge, esc, h, hz, mw, num } from "/static/format.js";

const tile = (id, label) =>
  h("div", { class: "tile", id },
    h("div", { class: "tile-label" }, label),
    h("div", { class: "tile-value value" }, "–"),
    h("div", { class: "tile-sub" }, ""));

function setTile(root, id, value, sub, toneClass = "") {
  const el = root.querySelector(`#${id}`);
  el.querySelector(".value").textContent = value;
  el.querySelector(".tile-sub").innerHTML = sub;
  el.dataset.tone = toneClass;
}

export function mount(main) {
  const tiles = h("div", { class: "tiles" },
    tile("tile-frequency", "Grid frequency"),
    tile("tile-power", "Fleet battery power"),
    tile("tile-delivered", "Delivered response"),
    tile("tile-headroom", "Headroom up / down"),
    tile("tile-sites", "Sites"));
  const charts = h("div", { class: "grid2" });
  const tables = h("div", { class: "grid2" });
  const products = h("section", { class: "card" }, h("h3", {}, "Reserve products now"),
    h("div", { class: "table-wrap", id: "products" }));
  const oems = h("section", { class: "card" }, h("h3", {}, "Per OEM (latest window)"),
    h("div", { class: "table-wrap", id: "per-oem" }));
  const alerts = h("section", { class: "card", id: "alerts", hidden: true },
    h("h3", {}, "Live alerts"), h("ul", { class: "alerts" }));
  tables.append(products, oems);
  main.append(h("h2", { class: "view-title" }, "Fleet"), tiles, charts, tables, alerts);

  const power = new TimeChart(charts, {
    title: "Fleet power against target and baseline", unit: "MW", digits: 3,
    series: [
      { label: "power", stroke: COLORS.power },
      { label: "target", stroke: COLORS.target, dash: [6, 4] },
      { label: "baseline", stroke: COLORS.baseline, dash: [2, 3] },
    ],
  });
  const freq = new TimeChart(charts, {
    title: "Grid frequency (mean of the sites)", unit: "Hz", digits: 3,
    // at least 49.9..50.1 Hz (the FCR-N band) so a flat 50 Hz reads as flat
    range: (u, min, max) => [Math.min(min ?? 50, 49.9) - 0.02, Math.max(max ?? 50, 50.1) + 0.02],
    series: [{ label: "frequency", stroke: COLORS.frequency }],
  });
  const oemBox = h("div", { class: "chart-slot" });
  const productBox = h("div", { class: "chart-slot" });
  charts.append(oemBox, productBox);
  let oemChart = null, oemKeys = "";
  let productChart = null, productKeys = "";
  const points = new Series();
  const verdicts = new Map(); // t -> {delivered, required: {product: mw}}

  function rebuildOem(keys) {
    if (oemChart) oemChart.destroy();
    oemBox.replaceChildren();
    oemChart = new TimeChart(oemBox, {
      title: "Battery power per OEM", unit: "MW", digits: 3,
      series: keys.map((k, i) => ({ label: k, stroke: PALETTE[i % PALETTE.length] })),
    });
  }
  function rebuildProducts(keys) {
    if (productChart) productChart.destroy();
    productBox.replaceChildren();
    productChart = new TimeChart(productBox, {
      title: "Required response per product and delivered response", unit: "MW", digits: 3,
      series: [
        { label: "delivered", stroke: COLORS.power, spanGaps: false },
        ...keys.map((k, i) => ({ label: `${k} required`, stroke: PALETTE[(i + 2) % PALETTE.length], dash: [6, 4] })),
      ],
    });
  }

  function render(p) {
    const now = p.status.now;
    const oldest = now - p.status.window_s * 1e6;
    points.prune(oldest);
    for (const t of verdicts.keys()) if (t < oldest) verdicts.delete(t);
    const rows = points.sorted();
    const xs = rows.map((r) => r.t / 1e6);
    power.setData(xs, rows.map((r) => r.power_mw), rows.map((r) => r.target_mw), rows.map((r) => r.baseline_mw));
    freq.setData(xs, rows.map((r) => r.frequency_hz));
    const keys = [...new Set(rows.flatMap((r) => Object.keys(r.per_oem)))].sort();
    if (keys.join() !== oemKeys || !oemChart) { oemKeys = keys.join(); rebuildOem(keys); }
    oemChart.setData(xs, ...keys.map((k) => rows.map((r) => r.per_oem[k] ?? null)));
    const vt = [...verdicts.keys()].sort((a, b) => a - b);
    const products = [...new Set(vt.flatMap((t) => Object.keys(verdicts.get(t).required)))].sort();
    if (products.join() !== productKeys || !productChart) { productKeys = products.join(); rebuildProducts(products); }
    const [times, gap] = withGaps(vt);
    const at = (i, t, f) => (gap[i] ? null : f(verdicts.get(t)));
    productChart.setData(times.map((t) => t / 1e6), times.map((t, i) => at(i, t, (v) => v.delivered)),
      ...products.map((k) => times.map((t, i) => at(i, t, (v) => v.required[k] ?? null))));
    renderTiles(p, rows);
    renderTables(p);
  }

  function renderTiles(p, rows) {
    const last = p.latest;
    const judged = [...rows].reverse().find((r) => r.target_mw !== null);
    const fresh = judged && last && judged.t >= last.t - 3e6;
    setTile(main, "tile-frequency", last ? hz(last.frequency_hz) : "–",
      last ? `window ending ${new Date(last.t / 1000).toISOString().slice(11, 19)} UTC` : "no fleet state yet",
      last && last.frequency_hz !== null && Math.abs(last.frequency_hz - 50) > 0.1 ? "warn" : "");
    const baseline = fresh ? judged.baseline_mw : (last ? last.baseline_mw : null);
    const source = fresh ? judged.baseline_source : last?.baseline_source;
    setTile(main, "tile-power", last ? mw(last.power_mw) : "–",
      fresh ? `target ${esc(mw(judged.target_mw))} · baseline ${esc(mw(baseline))}`
        : "no activation judged now: no target");
    const delivered = last && baseline !== null && baseline !== undefined ? last.power_mw - baseline : null;
    setTile(main, "tile-delivered", delivered === null ? "–" : mw(delivered),
      baseline === null || baseline === undefined ? "baseline not known now (no activation judged)"
        : `power − baseline (${source === "reported" ? "reported by the fleet" : "live compliance baseline"})`);
    setTile(main, "tile-headroom", last ? `${num(last.headroom_up_mw, 3)} / ${num(last.headroom_down_mw, 3)} MW` : "–",
      "more discharge / more charge available");
    const s = p.sites;
    setTile(main, "tile-sites", `${s.reporting} / ${s.total}`,
      `reporting in the last 10 s · <b>${s.faulted}</b> faulted · <b>${s.offline}</b> offline`,
      s.faulted || s.offline ? "warn" : "");
  }

  function renderTables(p) {
    const prod = main.querySelector("#products");
    prod.innerHTML = p.products.length ? `<table class="plain"><thead><tr>
      <th>Product</th><th class="num">Armed / ordered</th><th class="num">Sites armed</th>
      <th class="num">Required now</th><th class="num">Delivered now</th><th>Live verdict</th></tr></thead><tbody>` +
      p.products.map((r) => `<tr><td><b>${esc(r.product)}</b></td>
        <td class="num">${r.obligations ? esc(num(r.armed_mw, 3, "MW")) : "–"}</td>
        <td class="num">${num(r.sites_armed, 0)}</td>
        <td class="num">${esc(mw(r.required_mw))}</td><td class="num">${esc(mw(r.delivered_mw))}</td>
        <td>${r.status ? badge(r.status, r.finding) : '<span class="muted">none in the last 10 s</span>'}</td></tr>`).join("") +
      "</tbody></table>" : `<p class="muted">No reserve armed or ordered, no verdicts.</p>`;
    const oem = main.querySelector("#per-oem");
    oem.innerHTML = p.per_oem.length ? `<table class="plain"><thead><tr><th>OEM</th>
      <th class="num">Power</th><th class="num">Headroom up</th><th class="num">Headroom down</th>
      <th class="num">Online</th><th class="num">Faulted</th></tr></thead><tbody>` +
      p.per_oem.map((r) => `<tr><td><b>${esc(r.oem)}</b></td><td class="num">${esc(mw(r.power_mw))}</td>
        <td class="num">${esc(num(r.headroom_up_mw, 3, "MW"))}</td><td class="num">${esc(num(r.headroom_down_mw, 3, "MW"))}</td>
        <td class="num">${num(r.sites_online, 0)}</td><td class="num">${num(r.sites_faulted, 0)}</td></tr>`).join("") +
      "</tbody></table>" : `<p class="muted">No fleet state yet.</p>`;
    const alerts = main.querySelector("#alerts");
    alerts.hidden = p.alerts.length === 0;
    alerts.querySelector("ul").innerHTML = p.alerts.slice().reverse().map((a) =>
      `<li>${badge(a.status)} <span class="muted">${new Date(a.t / 1000).toISOString().slice(11, 19)} UTC</span>
       ${esc(a.message)}${a.site_count ? ` <span class="muted">(${esc(a.site_ids.slice(0, 8).join(", "))}${a.site_count > 8 ? " …" : ""})</span>` : ""}</li>`).join("");
  }

  return {
    update(p, snapshot) {
      if (snapshot) { points.clear(); verdicts.clear(); }
      points.merge(p.points);
      for (const v of p.verdicts) {
        // one entry per window end; an obligation judged twice there (1 s and 10 s windows) counts once
        const entry = verdicts.get(v.t) || { delivered: null, required: {}, acts: {} };
        entry.delivered = v.measured_mw;
        entry.acts[v.activation_id] = v;
        entry.required = {};
        for (const a of Object.values(entry.acts)) {
          entry.required[a.product] = (entry.required[a.product] ?? 0) + (a.required_mw ?? 0);
        }
        verdicts.set(v.t, entry);
      }
      render(p);
    },
    destroy() {
      for (const c of [power, freq, oemChart, productChart]) if (c) c.destroy();
    },
  };
}
