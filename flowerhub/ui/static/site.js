// Site view: one home's commanded vs measured power, baseline, SoC and faults over time,
// with its command results, fault changes and link changes as a timeline.
import { COLORS, TimeChart } from "/static/charts.js";
import { age, badge, esc, h, kw, modeName, num, pct, stamp } from "/static/format.js";

const fact = (label, id) => h("div", { class: "fact" }, h("div", { class: "fact-label" }, label), h("div", { class: "fact-value", id }, "–"));

// The time range of #/site/<id>?from=...&to=... (ISO-8601 or µs since the epoch), in s.
function rangeOf(query) {
  const at = (v) => (v === undefined || v === "" ? null
    : /^-?\d+$/.test(v) ? Number(v) / 1e6 : Date.parse(v) / 1e3);
  const from = at(query?.from), to = at(query?.to);
  if (from === null && to === null) return null;
  return { from, to };
}

export function mount(main, ctx) {
  const siteId = ctx.arg || "";
  const range = rangeOf(ctx.query);
  const header = h("div", { class: "site-head" },
    h("a", { href: "#/sites", class: "back" }, "← Sites"),
    h("h2", { class: "view-title" }, "Site ", h("span", { id: "site-id" }, siteId)),
    h("span", { id: "site-model", class: "muted" }, ""));
  const facts = h("div", { class: "facts" },
    fact("Link", "f-link"), fact("Mode", "f-mode"), fact("Battery power", "f-power"),
    fact("Commanded", "f-setpoint"), fact("Baseline", "f-baseline"), fact("Delivered", "f-delivered"),
    fact("State of charge", "f-soc"), fact("Armed", "f-armed"), fact("Last seen", "f-seen"));
  const command = h("section", { class: "card", id: "site-command" }, h("h3", {}, "Last command result"), h("div", { class: "body" }));
  const faults = h("section", { class: "card", id: "site-faults" }, h("h3", {}, "Active faults"), h("div", { class: "body" }));
  const link = h("section", { class: "card", id: "site-link" }, h("h3", {}, "Edge link"), h("div", { class: "body" }));
  const missing = h("p", { class: "card muted", id: "site-missing", hidden: true },
    `No event of site ${siteId} has been seen in the window.`);
  const rangeNote = h("p", { class: "card range-note", id: "site-range", hidden: !range });
  const charts = h("div", { class: "grid1" });
  const timeline = h("section", { class: "card" }, h("h3", {}, "Timeline (newest first)"),
    h("div", { class: "table-wrap" }, h("table", { class: "plain", id: "site-timeline" },
      h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, "Event"), h("th", {}, "Status"), h("th", {}, "Detail"))),
      h("tbody"))));
  main.append(header, rangeNote, missing, facts, h("div", { class: "grid3" }, command, faults, link), charts, timeline);

  const power = new TimeChart(charts, {
    title: "Commanded vs measured battery power, and baseline", unit: "kW", digits: 2,
    series: [
      { label: "measured", stroke: COLORS.measured },
      { label: "commanded", stroke: COLORS.commanded, dash: [6, 4] },
      { label: "baseline", stroke: COLORS.baseline, dash: [2, 3] },
    ],
    stepped: [1],
  });
  const note = h("p", { class: "muted chart-note", id: "site-baseline-note", hidden: true },
    "This site's bridge does not report a baseline yet: it is drawn at 0 kW and delivered = power.");
  charts.append(note);
  const lower = h("div", { class: "grid2" });
  charts.append(lower);
  const soc = new TimeChart(lower, { title: "State of charge", unit: "%", digits: 1, height: 180,
    range: (u, min, max) => [Math.max(0, (min ?? 0) - 2), Math.min(100, (max ?? 100) + 2)],
    series: [{ label: "SoC", stroke: COLORS.soc }] });
  const faultChart = new TimeChart(lower, { title: "Active faults", unit: "count", digits: 0, height: 180,
    series: [{ label: "faults", stroke: COLORS.faults }], stepped: [0],
    range: (u, min, max) => [0, Math.max(3, (max ?? 0) + 1)] });
  const data = { t: [], power_kw: [], setpoint_kw: [], baseline_kw: [], soc_pct: [], faults: [] };
  if (range) {
    const lo = range.from ?? range.to - 900, hi = range.to ?? range.from + 900;
    for (const c of [power, soc, faultChart]) c.setXRange(lo, hi);
  }

  function renderRange(r) {
    if (!r) return;
    const span = `${r.from === null ? "…" : stamp(r.from)} to ${r.to === null ? "now" : stamp(r.to)}`;
    const held = r.held_from === null ? "The UI holds no sample of this site yet."
      : r.partial ? `The UI holds this site's samples from ${stamp(r.held_from)} on: the range starts earlier.`
      : "";
    rangeNote.innerHTML = `Time range <b id="site-range-span">${esc(span)}</b> (linked from an audit report). `
      + `<a href="#/site/${encodeURIComponent(siteId)}">Show live</a>`
      + (held ? `<br><span class="muted" id="site-range-held">${esc(held)}</span>` : "");
  }
  const events = [];

  function set(id, html) { main.querySelector(`#${id}`).innerHTML = html; }

  function renderHead(s, now) {
    missing.hidden = true;
    note.hidden = s.baseline_reported;
    main.querySelector("#site-model").textContent = `${s.oem} · ${s.model}`;
    set("f-link", badge(s.link));
    set("f-mode", esc(modeName(s.mode)));
    set("f-power", esc(kw(s.power_kw)));
    set("f-setpoint", esc(kw(s.setpoint_kw)));
    set("f-baseline", s.baseline_reported ? esc(kw(s.baseline_kw)) : `${esc(kw(0))} <span class="muted">not reported</span>`);
    set("f-delivered", esc(kw(s.delivered_kw)));
    set("f-soc", esc(pct(s.soc_pct)));
    set("f-armed", esc(s.armed ?? "none"));
    set("f-seen", esc(age(now, s.last_seen)));
    const r = s.last_result;
    command.querySelector(".body").innerHTML = r ? `
      <div class="result-line">${badge(r.status)} <span class="big" id="site-result-kw">${esc(kw(r.measured_kw))}</span> measured</div>
      <dl class="kv"><dt>Requested</dt><dd>${esc(kw(r.requested_kw))}</dd><dt>Written</dt><dd>${esc(kw(r.written_kw))}</dd>
      <dt>Likely cause</dt><dd>${esc(r.likely_cause ?? "–")}</dd><dt>Latency</dt><dd>${esc(num(r.latency_ms, 0, "ms"))}</dd>
      <dt>When</dt><dd>${esc(stamp(r.t))}</dd><dt>Command</dt><dd class="mono">${esc(r.command_id ?? "–")}</dd></dl>
      ${r.reason ? `<p class="muted">${esc(r.reason)}</p>` : ""}` : '<p class="muted">No command result seen.</p>';
    faults.querySelector(".body").innerHTML = s.fault_list.length
      ? `<ul class="faults">${s.fault_list.map((f) => `<li>${badge(f.severity)} <b>${esc(f.name || f.code)}</b> <span class="muted mono">${esc(f.code)} · ${esc(f.source)}</span></li>`).join("")}</ul>`
      : (s.faulted ? `<p>${badge("FAULT")} the inverter reports a fault (no fault event yet)</p>` : '<p class="muted">None.</p>');
    link.querySelector(".body").innerHTML = `<dl class="kv"><dt>State</dt><dd>${badge(s.link)}</dd>
      <dt>Round trip</dt><dd>${esc(num(s.rtt_ms, 1, "ms"))}</dd><dt>Modbus errors</dt><dd>${esc(num(s.errors, 0))}</dd>
      <dt>Outbox</dt><dd>${esc(num(s.outbox_depth, 0))} events</dd><dt>Last error</dt><dd>${esc(s.last_error ?? "–")}</dd></dl>`;
  }

  function renderCharts(now, windowS) {
    const oldest = range ? -Infinity : now - windowS * 1e6;  // a range keeps what it asked for
    let drop = 0;
    while (drop < data.t.length && data.t[drop] < oldest) drop++;
    if (drop) for (const k of Object.keys(data)) data[k].splice(0, drop);
    const xs = data.t.map((t) => t / 1e6);
    power.setData(xs, data.power_kw, data.setpoint_kw, data.baseline_kw.map((v) => v ?? 0));
    soc.setData(xs, data.soc_pct);
    faultChart.setData(xs, data.faults);
  }

  function renderTimeline() {
    const body = main.querySelector("#site-timeline tbody");
    body.innerHTML = events.slice(-200).reverse().map((e) => `<tr><td class="nowrap">${esc(stamp(e.t))}</td>
      <td>${esc(e.kind)}</td><td>${badge(e.status)}</td><td>${esc(e.text)}</td></tr>`).join("");
  }

  return {
    update(p, snapshot) {
      if (snapshot) { for (const k of Object.keys(data)) data[k].length = 0; events.length = 0; }
      if (!p.site) { missing.hidden = false; return; }
      if (p.history) for (const k of Object.keys(data)) data[k].push(...p.history[k]);
      events.push(...p.timeline);
      renderHead(p.site, p.status.now);
      renderRange(p.range);
      renderCharts(p.status.now, p.status.window_s);
      if (snapshot || p.timeline.length) renderTimeline();
    },
    destroy() { for (const c of [power, soc, faultChart]) c.destroy(); },
  };
}
