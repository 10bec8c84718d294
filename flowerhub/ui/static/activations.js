// Activations view: live compliance verdicts per activation (or armed reserve), the
// fleet-wide alerts, and the audit reports of the archive, browsable.
import { TabulatorFull as Tabulator } from "/vendor/tabulator_esm.min.js";
import { COLORS, TimeChart, withGaps } from "/static/charts.js";
import { badge, clock, esc, h, mw, num, stamp } from "/static/format.js";

const stateOf = (a, now) => (a.start === null || a.end === null) ? "unknown"
  : now < a.start ? "pending" : now < a.end ? "active" : "ended";

export function mount(main, ctx) {
  const tableHolder = h("div", { id: "activations-table" });
  const detail = h("section", { class: "card", id: "activation-detail", hidden: true },
    h("h3", {}, "Verdicts of ", h("span", { id: "detail-id" })), h("div", { class: "detail-chart" }),
    h("div", { class: "table-wrap" }, h("table", { class: "plain", id: "detail-verdicts" },
      h("thead", {}, h("tr", {}, ...["Time", "Status", "Finding", "Rule", "Required", "Delivered", "Message"].map((t) => h("th", {}, t)))),
      h("tbody"))));
  const alerts = h("section", { class: "card", id: "activation-alerts", hidden: true },
    h("h3", {}, "Fleet-wide alerts"), h("ul", { class: "alerts" }));
  const reports = h("section", { class: "card", id: "reports" },
    h("h3", {}, "Audit reports", h("button", { class: "small", id: "reports-rescan", onclick: () => loadReports() }, "Rescan")),
    h("div", { class: "body" }, h("p", { class: "muted" }, "Loading…")));
  main.append(h("h2", { class: "view-title" }, "Activations"),
    h("section", { class: "card flush" }, h("h3", { class: "pad" }, "Activations and armed reserves, judged by the live compliance check"), tableHolder),
    detail, alerts, reports);

  let now = 0, selected = null, chart = null;
  const rows = new Map();
  const verdicts = [];
  const table = new Tabulator(tableHolder, {
    maxHeight: "420px", layout: "fitColumns", index: "id", data: [],
    placeholder: "No activation or armed reserve in the look-back",
    initialSort: [{ column: "start", dir: "desc" }],
    columns: [
      { title: "Start (UTC)", field: "start", width: 150, sorter: "number", formatter: (c) => esc(stamp(c.getValue()).replace(" UTC", "")) },
      { title: "Activation", field: "id", minWidth: 200, formatter: (c) => `<span class="mono">${esc(c.getValue())}</span>` },
      { title: "Product", field: "product", width: 110 },
      { title: "Kind", field: "kind", width: 140, formatter: (c) => esc(c.getValue() || "–") + (c.getRow().getData().test_name ? ` <span class="muted">${esc(c.getRow().getData().test_name)}</span>` : "") },
      { title: "MW", field: "amount_mw", width: 90, hozAlign: "right", sorter: "number", formatter: (c) => esc(num(c.getValue(), 3)) },
      { title: "State", field: "state", width: 95, formatter: (c) => badge(stateOf(c.getRow().getData(), now)) },
      { title: "PASS / WARN / FAIL", field: "fail", width: 150, hozAlign: "center",
        formatter: (c) => { const d = c.getRow().getData(); return `<span class="ok-t">${d.pass}</span> / <span class="warn-t">${d.warn}</span> / <span class="bad-t">${d.fail}</span>`; } },
      { title: "Worst", field: "worst", width: 90, formatter: (c) => badge(c.getValue()) },
      { title: "Latest verdict", field: "last_message", minWidth: 260,
        formatter: (c) => { const d = c.getRow().getData(); return d.last_status ? `${badge(d.last_status, d.last_finding)} <span class="muted">${esc(d.last_message)}</span>` : '<span class="muted">no verdict yet</span>'; } },
    ],
  });
  table.on("rowClick", (e, row) => select(row.getData().id));

  function select(id) {
    selected = id;
    verdicts.length = 0;
    detail.hidden = false;
    main.querySelector("#detail-id").textContent = id;
    ctx.reopen({ activation: id });
  }

  function renderDetail() {
    if (!selected) return;
    if (!chart) {
      chart = new TimeChart(detail.querySelector(".detail-chart"), {
        title: "Required and delivered response", unit: "MW", digits: 3,
        series: [{ label: "required", stroke: COLORS.target, dash: [6, 4] }, { label: "delivered", stroke: COLORS.power }],
      });
    }
    const byT = new Map(verdicts.map((v) => [v.t, v]));
    const vs = [...byT.values()].sort((a, b) => a.t - b.t);
    const [times, gap] = withGaps(vs.map((v) => v.t));
    let k = 0;
    const rows = times.map((t, i) => (gap[i] ? null : vs[k++]));
    chart.setData(times.map((t) => t / 1e6), rows.map((v) => v && v.required_mw), rows.map((v) => v && v.measured_mw));
    detail.querySelector("#detail-verdicts tbody").innerHTML = vs.slice(-100).reverse().map((v) => `<tr>
      <td class="nowrap">${esc(clock(v.t))}</td><td>${badge(v.status)}</td><td>${esc(v.finding)}</td>
      <td class="mono">${esc(v.rule_id)}</td><td class="num">${esc(mw(v.required_mw))}</td>
      <td class="num">${esc(mw(v.measured_mw))}</td><td>${esc(v.message)}</td></tr>`).join("");
  }

  async function loadReports() {
    const body = reports.querySelector(".body");
    let data;
    try {
      const response = await fetch("/api/reports");
      data = await response.json();
    } catch (err) {
      body.innerHTML = `<p class="bad-t">Cannot list the reports: ${esc(err)}</p>`;
      return;
    }
    if (!data.reports.length) {
      body.innerHTML = '<p class="muted">No audit report found (start the UI with --reports DIR, or --archive of a demo run).</p>';
      return;
    }
    body.innerHTML = "";
    for (const r of data.reports) {
      const acts = r.activations.map((a) => `<tr><td class="mono">${esc(a.activation)}</td><td>${esc(a.product ?? "–")}</td>
        <td>${badge(a.status)}</td><td class="num">${a.pass}</td><td class="num">${a.fail}</td></tr>`).join("");
      const item = h("details", { class: "report" },
        h("summary", { html: `${badge(r.status)} <b>${esc(r.title)}</b> <span class="muted">${esc(new Date(r.mtime * 1000).toISOString().slice(0, 16).replace("T", " "))} UTC · ${r.verdicts} verdicts, ${r.failed} not passed</span>
          ${r.html ? ` · <a href="${esc(r.html)}" target="_blank" rel="noopener">open the report</a>` : ""}` }),
        h("div", { html: r.error ? `<p class="bad-t">${esc(r.error)}</p>` : `<table class="plain"><thead><tr><th>Activation</th><th>Product</th><th>Verdict</th><th class="num">Passed</th><th class="num">Not passed</th></tr></thead><tbody>${acts}</tbody></table>` }),
        h("div", { class: "report-rows" }));
      item.addEventListener("toggle", () => item.open && loadRows(r.id, item.querySelector(".report-rows")), { once: true });
      body.append(item);
    }
  }

  async function loadRows(id, el) {
    const r = await (await fetch(`/api/reports/${encodeURIComponent(id)}`)).json();
    el.innerHTML = `<table class="plain"><thead><tr><th>Activation</th><th>Rule</th><th>Requirement</th>
      <th class="num">Measured</th><th class="num">Threshold</th><th>Unit</th><th>Verdict</th></tr></thead><tbody>` +
      r.rows.map((v) => `<tr><td class="mono">${esc(v.activation)}</td><td class="mono">${esc(v.rule_id)}</td>
        <td>${esc(v.requirement ?? "")}</td><td class="num">${esc(num(v.measured, 4))}</td>
        <td class="num">${esc(num(v.threshold, 4))}</td><td>${esc(v.unit ?? "")}</td><td>${badge(v.status)}</td></tr>`).join("") +
      "</tbody></table>";
  }

  loadReports();
  return {
    params: {},
    update(p, snapshot) {
      now = p.status.now;
      for (const a of p.activations) rows.set(a.id, a);
      if (p.activations.length || snapshot) table.replaceData([...rows.values()]);
      else for (const row of table.getRows("visible")) row.reformat();
      if (snapshot) alerts.querySelector("ul").innerHTML = "";
      if (p.alerts.length) {
        alerts.hidden = false;
        alerts.querySelector("ul").insertAdjacentHTML("afterbegin", p.alerts.slice().reverse().map((a) =>
          `<li>${badge(a.status)} <span class="muted">${esc(clock(a.t))} UTC</span> ${esc(a.message)}</li>`).join(""));
      }
      if (p.selected === selected && p.verdicts) {
        if (snapshot) verdicts.length = 0;
        verdicts.push(...p.verdicts);
        renderDetail();
      }
    },
    destroy() { table.destroy(); if (chart) chart.destroy(); },
  };
}
