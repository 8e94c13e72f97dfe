// adbench web leaderboard: a sortable ranked table and in-context learning curves.
// Plain JavaScript, no dependencies: the page's data is inlined (window.ADBENCH_BOARD),
// so the site works from file:// as well as from any static host.
"use strict";

(function () {
  const board = window.ADBENCH_BOARD;
  if (!board) return;
  const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
    "#17becf", "#bcbd22", "#7f7f7f", "#d62728"];
  const referenceColors = { optimal: "#000000", random: "#999999", source: "#d62728" };
  const selected = new Set(board.entries.filter((e, i) => e.kind === "reference" || e.rank !== null && e.rank <= 3).map(e => e.id));
  const colorOf = {};
  let next = 0;
  for (const entry of board.entries) {
    colorOf[entry.id] = entry.kind === "reference" && referenceColors[entry.model_id]
      ? referenceColors[entry.model_id] : palette[next++ % palette.length];
  }
  let sortKey = "score_iqm";
  let sortDescending = true;

  const fmt = (x, digits = 3) => (x === null || x === undefined ? "" : Number(x).toFixed(digits));

  function sortedEntries() {
    const entries = board.entries.slice();
    const key = sortKey;
    entries.sort((a, b) => {
      let x = a[key], y = b[key];
      if (key === "rank") { x = x === null ? Infinity : x; y = y === null ? Infinity : y; }
      if (typeof x === "string" || typeof y === "string") {
        x = String(x); y = String(y);
        return sortDescending ? y.localeCompare(x) : x.localeCompare(y);
      }
      return sortDescending ? y - x : x - y;
    });
    return entries;
  }

  function cell(tag, text, className) {
    const el = document.createElement(tag);
    if (text !== undefined) el.textContent = text;
    if (className) el.className = className;
    return el;
  }

  function link(text, href) {
    if (!href) return document.createTextNode(text);
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  function renderTable() {
    const body = document.querySelector("#board tbody");
    body.replaceChildren();
    for (const entry of sortedEntries()) {
      const row = document.createElement("tr");
      row.dataset.entryId = entry.id;
      if (entry.kind === "reference") row.className = "reference";
      const pick = document.createElement("input");
      pick.type = "checkbox";
      pick.checked = selected.has(entry.id);
      pick.title = "show this entry's learning curve";
      pick.addEventListener("change", () => {
        if (pick.checked) selected.add(entry.id); else selected.delete(entry.id);
        renderChart();
      });
      const pickCell = cell("td");
      const swatch = cell("span", "", "swatch");
      swatch.style.background = colorOf[entry.id];
      pickCell.append(pick, swatch);
      row.append(pickCell);
      row.append(cell("td", entry.rank === null ? "ref" : String(entry.rank), "num"));
      const model = cell("td");
      model.append(link(entry.model_id, entry.model_card));
      if (entry.kind === "reference") model.append(cell("span", " (reference)", "muted"));
      row.append(model);
      const score = cell("td", "", "num");
      score.append(cell("strong", fmt(entry.score_iqm)),
        cell("span", ` [${fmt(entry.score_iqm_ci[0])}, ${fmt(entry.score_iqm_ci[1])}]`, "ci"));
      row.append(score);
      row.append(cell("td", fmt(entry.final_iqm), "num"));
      const improvement = cell("td", "", "num");
      improvement.append(cell("span", fmt(entry.improvement_iqm)));
      if (entry.improvement_ci) {
        improvement.append(cell("span",
          ` [${fmt(entry.improvement_ci[0])}, ${fmt(entry.improvement_ci[1])}]`, "ci"));
      }
      row.append(improvement);
      row.append(cell("td", entry.model_revision ? entry.model_revision.slice(0, 8) : "", "mono"));
      row.append(cell("td", entry.date.slice(0, 10)));
      const results = cell("td");
      results.append(link("summary", entry.results_summary), document.createTextNode(" · "),
        link("runs", entry.results_runs));
      row.append(results);
      body.append(row);
    }
    for (const th of document.querySelectorAll("#board th[data-key]")) {
      const active = th.dataset.key === sortKey;
      th.setAttribute("aria-sort", active ? (sortDescending ? "descending" : "ascending") : "none");
    }
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attributes) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attributes || {})) el.setAttribute(k, v);
    return el;
  }

  function renderChart() {
    const chart = document.getElementById("curves");
    chart.replaceChildren();
    const width = 900, height = 420, left = 60, right = 20, top = 20, bottom = 45;
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const episodes = board.benchmark.episodes;
    const logX = episodes > 50;
    const shown = board.entries.filter(e => selected.has(e.id) && board.curves[e.id]);
    let low = Infinity, high = -Infinity;
    for (const entry of shown) {
      const { mean, half } = board.curves[entry.id];
      mean.forEach((m, i) => { low = Math.min(low, m - half[i]); high = Math.max(high, m + half[i]); });
    }
    if (!isFinite(low)) { low = 0; high = 1; }
    if (high - low < 1e-9) { high += 0.5; low -= 0.5; }
    const pad = 0.05 * (high - low);
    low -= pad; high += pad;
    const xOf = e => left + (width - left - right) * (logX
      ? Math.log(e) / Math.log(episodes) : (e - 1) / Math.max(1, episodes - 1));
    const yOf = v => top + (height - top - bottom) * (1 - (v - low) / (high - low));
    const axes = svg("g", { class: "axes" });
    axes.append(svg("line", { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom }));
    axes.append(svg("line", { x1: left, y1: top, x2: left, y2: height - bottom }));
    const xTicks = logX ? [1, 10, 100, 1000, 10000].filter(t => t <= episodes)
      : Array.from({ length: 5 }, (_, i) => Math.round(1 + i * (episodes - 1) / 4));
    for (const t of xTicks) {
      axes.append(svg("line", { x1: xOf(t), y1: height - bottom, x2: xOf(t), y2: height - bottom + 5 }));
      const label = svg("text", { x: xOf(t), y: height - bottom + 18, "text-anchor": "middle" });
      label.textContent = String(t);
      axes.append(label);
    }
    // Round tick values: a step of 1, 2 or 5 times a power of ten, about five ticks.
    const raw = (high - low) / 5, power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map(m => m * power).find(s => s >= raw);
    const decimals = Math.max(0, -Math.floor(Math.log10(step)));
    for (let v = Math.ceil(low / step) * step; v <= high; v += step) {
      axes.append(svg("line", { x1: left - 5, y1: yOf(v), x2: width - right, y2: yOf(v), class: "grid" }));
      const label = svg("text", { x: left - 8, y: yOf(v) + 4, "text-anchor": "end" });
      label.textContent = v.toFixed(decimals);
      axes.append(label);
    }
    const xLabel = svg("text", { x: (left + width - right) / 2, y: height - 8, "text-anchor": "middle" });
    xLabel.textContent = `in-context episode${logX ? " (log scale)" : ""}`;
    const yLabel = svg("text", { x: 14, y: (top + height - bottom) / 2, "text-anchor": "middle",
      transform: `rotate(-90 14 ${(top + height - bottom) / 2})` });
    yLabel.textContent = "mean return (95% CI band)";
    axes.append(xLabel, yLabel);
    chart.append(axes);
    for (const entry of shown) {
      const { mean, half } = board.curves[entry.id];
      const xs = mean.map((_, i) => xOf(i + 1));
      const upper = mean.map((m, i) => `${xs[i].toFixed(1)},${yOf(m + half[i]).toFixed(1)}`);
      const lower = mean.map((m, i) => `${xs[i].toFixed(1)},${yOf(m - half[i]).toFixed(1)}`).reverse();
      chart.append(svg("polygon", { points: upper.concat(lower).join(" "), class: "band",
        fill: colorOf[entry.id], "data-entry-id": entry.id }));
      const d = mean.map((m, i) => `${i ? "L" : "M"}${xs[i].toFixed(1)},${yOf(m).toFixed(1)}`).join("");
      const path = svg("path", { d, class: "curve", stroke: colorOf[entry.id], "data-entry-id": entry.id });
      const title = svg("title");
      title.textContent = `${entry.model_id}: score ${fmt(entry.score_iqm)}`;
      path.append(title);
      chart.append(path);
    }
    const legend = document.getElementById("legend");
    legend.replaceChildren();
    for (const entry of shown) {
      const item = cell("span", "", "legend-item");
      const swatch = cell("span", "", "swatch");
      swatch.style.background = colorOf[entry.id];
      item.append(swatch, document.createTextNode(entry.model_id));
      legend.append(item);
    }
    document.getElementById("chart-empty").hidden = shown.length > 0;
  }

  for (const th of document.querySelectorAll("#board th[data-key]")) {
    th.addEventListener("click", () => {
      if (sortKey === th.dataset.key) sortDescending = !sortDescending;
      else { sortKey = th.dataset.key; sortDescending = th.dataset.type !== "text"; }
      renderTable();
    });
  }
  renderTable();
  renderChart();
})();
