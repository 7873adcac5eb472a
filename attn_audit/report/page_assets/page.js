// attn_audit report page: the instance browser. Plain JavaScript, no library, no network.
// Data: #meta (JSON) and three gzip+base64 blobs (attn_audit/report/page_data.py):
//   columns   float32 [C, N]
//   sequences per sequence: uint32 offsets [N + 1], uint32 vocabulary ids
//   scores    float32 scales [R, N], then per row float16 values / scale (NaN: missing)
// Every text from the data is put in the page with textContent, never parsed as HTML.
"use strict";
(function () {
  const meta = JSON.parse(document.getElementById("meta").textContent);
  const N = meta.count;
  const status = document.getElementById("browser-status");
  const state = { order: null, sortKey: "index", sortDir: 1, page: 0, pageSize: 50,
                  open: null, scale: "row" };
  let columns = null, sequences = null, scores = null, texts = null, lowerTexts = null;

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "style") node.setAttribute("style", value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (value !== undefined && value !== null) node.setAttribute(key, value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function base64Bytes(text) {
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text);
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  async function inflate(name) {
    const text = document.getElementById("blob-" + name).textContent;
    const stream = new Blob([base64Bytes(text)]).stream()
      .pipeThrough(new DecompressionStream("gzip"));
    return await new Response(stream).arrayBuffer();
  }

  // float16 -> float32, by table (65,536 entries) built once.
  let halfTable = null;
  function halves(buffer, offset, length) {
    if (!halfTable) {
      halfTable = new Float32Array(65536);
      for (let h = 0; h < 65536; h++) {
        const sign = h & 0x8000 ? -1 : 1, exponent = (h >> 10) & 0x1f, fraction = h & 0x3ff;
        halfTable[h] = exponent === 0 ? sign * fraction * Math.pow(2, -24)
          : exponent === 31 ? (fraction ? NaN : sign * Infinity)
          : sign * (1 + fraction / 1024) * Math.pow(2, exponent - 15);
      }
    }
    const raw = new Uint16Array(buffer, offset, length);
    const out = new Float32Array(length);
    for (let i = 0; i < length; i++) out[i] = halfTable[raw[i]];
    return out;
  }

  async function loadTable() {
    const table = new Float32Array(await inflate("columns"));
    columns = {};
    meta.columns.forEach((column, c) => { columns[column.key] = table.subarray(c * N, (c + 1) * N); });
    const buffer = await inflate("sequences");
    sequences = {};
    let at = 0;
    for (const sequence of meta.sequences) {
      const offsets = new Uint32Array(buffer, at, N + 1);
      at += 4 * (N + 1);
      const ids = new Uint32Array(buffer, at, offsets[N]);
      at += 4 * offsets[N];
      sequences[sequence.name] = { offsets, ids };
    }
  }

  async function loadScores() {
    if (scores) return scores;
    const buffer = await inflate("scores");
    const R = meta.rows.length;
    const scales = new Float32Array(buffer, 0, R * N);
    let at = 4 * R * N;
    const rows = {};
    meta.rows.forEach((row, r) => {
      const length = sequences[row.sequence].offsets[N];
      rows[row.name] = { values: halves(buffer, at, length), scales: scales.subarray(r * N, (r + 1) * N) };
      at += 2 * length;
    });
    scores = rows;
    return scores;
  }

  function tokensOf(name, i) {
    const sequence = sequences[name];
    if (!sequence) return [];
    const out = [];
    for (let k = sequence.offsets[i]; k < sequence.offsets[i + 1]; k++) out.push(meta.vocab[sequence.ids[k]]);
    return out;
  }

  function textOf(i) {
    const text = tokensOf(meta.sequences.some(s => s.name === "words") ? "words" : "tokens", i).join(" ");
    const question = tokensOf("question", i);
    return question.length ? text + " ‖ " + question.join(" ") : text;
  }

  function format(column, value) {
    if (Number.isNaN(value)) return "—";
    if (column.kind === "class") return meta.classes[value] ?? String(value);
    if (column.kind === "bool") return value ? "yes" : "no";
    if (column.kind === "int") return String(value);
    return value.toFixed(3);
  }

  // ------------------------------------------------------------ filtering and sorting
  const shown = () => meta.columns.filter(c => c.kind !== "hidden");
  const filters = { search: "", label: "", predicted: "", correct: "", bin: "", rangeKey: "",
                    low: "", high: "" };
  const BINS = [[0, 0.25], [0.25, 0.5], [0.5, 0.75], [0.75, 1.0000001]];

  function applyFilters() {
    const keep = [];
    const needle = filters.search.trim().toLowerCase();
    if (needle && !lowerTexts) lowerTexts = Array.from({ length: N }, (_, i) => textOf(i).toLowerCase());
    const range = filters.rangeKey && columns[filters.rangeKey];
    const low = filters.low === "" ? -Infinity : Number(filters.low);
    const high = filters.high === "" ? Infinity : Number(filters.high);
    const bin = filters.bin === "" ? null : BINS[Number(filters.bin)];
    for (let i = 0; i < N; i++) {
      if (filters.label !== "" && columns.label[i] !== Number(filters.label)) continue;
      if (filters.predicted !== "" && columns.predicted_class[i] !== Number(filters.predicted)) continue;
      if (filters.correct !== "" && columns.correct[i] !== Number(filters.correct)) continue;
      if (bin && !(columns.max_attention[i] >= bin[0] && columns.max_attention[i] < bin[1])) continue;
      if (range && !(range[i] >= low && range[i] <= high)) continue;
      if (needle && !lowerTexts[i].includes(needle)) continue;
      keep.push(i);
    }
    state.order = Int32Array.from(keep);
    sortRows();
  }

  function sortRows() {
    const dir = state.sortDir;
    if (state.sortKey === "text") {
      if (!texts) texts = Array.from({ length: N }, (_, i) => textOf(i));
      const collator = new Intl.Collator("en");
      state.order.sort((a, b) => dir * collator.compare(texts[a], texts[b]) || a - b);
    } else {
      const values = columns[state.sortKey];
      state.order.sort((a, b) => {
        const x = values[a], y = values[b];
        if (Number.isNaN(x) || Number.isNaN(y)) return Number.isNaN(x) - Number.isNaN(y) || a - b;
        return dir * (x - y) || a - b;  // missing values last in both directions
      });
    }
    state.page = 0;
    render();
  }

  // ------------------------------------------------------------ controls
  function select(name, title, options) {
    const node = el("select", { id: "filter-" + name, onchange: e => { filters[name] = e.target.value; applyFilters(); } },
      el("option", { value: "", text: "all" }),
      ...options.map(([value, text]) => el("option", { value, text })));
    return el("label", {}, title + " ", node);
  }

  function buildControls() {
    const classes = meta.classes.map((name, k) => [String(k), name]);
    const controls = document.getElementById("controls");
    const search = el("input", { type: "search", id: "filter-search", placeholder: "words in the text",
      oninput: e => { filters.search = e.target.value; applyFilters(); } });
    controls.append(el("label", {}, "search ", search));
    controls.append(select("label", "label", classes));
    controls.append(select("predicted", "predicted", classes));
    controls.append(select("correct", "prediction", [["1", "correct"], ["0", "wrong"]]));
    if (columns.max_attention) {
      controls.append(select("bin", "max attention", [["0", "[0, 0.25)"], ["1", "[0.25, 0.5)"],
        ["2", "[0.5, 0.75)"], ["3", "[0.75, 1]"]]));
    }
    const numeric = shown().filter(c => c.kind === "float" || c.kind === "int");
    const rangeKey = el("select", { id: "filter-range-key", onchange: e => { filters.rangeKey = e.target.value; applyFilters(); } },
      el("option", { value: "", text: "(column)" }),
      ...numeric.map(c => el("option", { value: c.key, text: c.title })));
    const bound = side => el("input", { type: "number", step: "any", id: "filter-" + side,
      oninput: e => { filters[side] = e.target.value; applyFilters(); } });
    controls.append(el("label", {}, "range ", rangeKey, " from ", bound("low"), " to ", bound("high")));
    const size = el("select", { id: "page-size", onchange: e => { state.pageSize = Number(e.target.value); state.page = 0; render(); } },
      ...[25, 50, 100, 200].map(n => el("option", { value: String(n), text: String(n), selected: n === 50 ? "" : null })));
    controls.append(el("label", {}, "rows per page ", size));
  }

  // ------------------------------------------------------------ table and pager
  function render() {
    const order = state.order, pages = Math.max(1, Math.ceil(order.length / state.pageSize));
    state.page = Math.min(state.page, pages - 1);
    const first = state.page * state.pageSize;
    const visible = order.subarray(first, first + state.pageSize);
    const header = el("tr");
    const cols = shown();
    const addHeader = (key, title, about) => {
      const sort = state.sortKey === key ? (state.sortDir > 0 ? "ascending" : "descending") : null;
      header.append(el("th", { "data-key": key, title: about, "aria-sort": sort,
        onclick: () => { state.sortDir = state.sortKey === key ? -state.sortDir : (key === "index" || key === "text" ? 1 : -1);
                         state.sortKey = key; sortRows(); } }, title));
    };
    addHeader(cols[0].key, cols[0].title, cols[0].about);
    addHeader("text", "text", "the instance's words (click a row to open it)");
    for (const column of cols.slice(1)) addHeader(column.key, column.title, column.about);
    const body = el("tbody");
    for (const i of visible) {
      const row = el("tr", { "data-index": String(i), class: state.open === i ? "open" : null, tabindex: "0",
        onclick: () => openInstance(i), onkeydown: e => { if (e.key === "Enter") openInstance(i); } });
      row.append(el("td", { class: "num", text: format(cols[0], columns[cols[0].key][i]) }));
      const text = textOf(i);
      row.append(el("td", { class: "text", title: text, text }));
      for (const column of cols.slice(1)) {
        row.append(el("td", { class: column.kind === "class" || column.kind === "bool" ? "" : "num",
          "data-key": column.key, text: format(column, columns[column.key][i]) }));
      }
      body.append(row);
    }
    const table = el("table", { class: "instances", id: "instances" }, el("thead", {}, header), body);
    document.getElementById("table-wrap").replaceChildren(table);
    const pager = document.getElementById("pager");
    const go = page => { state.page = Math.max(0, Math.min(pages - 1, page)); render(); };
    const jump = el("input", { type: "number", id: "page-number", min: "1", max: String(pages), value: String(state.page + 1),
      onchange: e => go(Number(e.target.value) - 1) });
    pager.replaceChildren(
      el("button", { id: "page-first", onclick: () => go(0), disabled: state.page === 0 ? "" : null }, "« first"),
      el("button", { id: "page-prev", onclick: () => go(state.page - 1), disabled: state.page === 0 ? "" : null }, "‹ previous"),
      el("span", {}, "page ", jump, ` of ${pages}`),
      el("button", { id: "page-next", onclick: () => go(state.page + 1), disabled: state.page >= pages - 1 ? "" : null }, "next ›"),
      el("button", { id: "page-last", onclick: () => go(pages - 1), disabled: state.page >= pages - 1 ? "" : null }, "last »"));
    status.textContent = `${order.length.toLocaleString("en")} of ${N.toLocaleString("en")} instances` +
      ` match; showing ${order.length ? first + 1 : 0}–${first + visible.length}. Click a column to sort, a row to open it.`;
    status.dataset.matching = String(order.length);
  }

  // ------------------------------------------------------------ one instance
  function colour(value, limit, signed) {
    if (!Number.isFinite(value)) return null;
    const strength = limit > 0 ? Math.min(1, Math.abs(value) / limit) : 0;
    const rgb = signed && value < 0 ? "31, 119, 180" : "214, 39, 40";
    return `rgba(${rgb}, ${strength.toFixed(3)})`;
  }

  async function openInstance(i) {
    state.open = i;
    const panel = document.getElementById("instance");
    panel.hidden = false;
    panel.replaceChildren(el("p", { class: "status", text: "Loading the scores…" }));
    panel.scrollIntoView({ block: "nearest" });
    for (const row of document.querySelectorAll("#instances tbody tr")) {
      row.classList.toggle("open", Number(row.dataset.index) === i);
    }
    try { await loadScores(); } catch (error) { return showError(error, panel); }
    if (state.open !== i) return;
    const probabilities = meta.classes.map((name, k) => `${name} ${format({ kind: "float" }, columns["prob/" + k][i])}`);
    const facts = shown().map(c => `${c.title}: ${format(c, columns[c.key][i])}`);
    const scaleChoice = el("label", { class: "legend" }, "colour scale ",
      el("select", { id: "colour-scale", onchange: e => { state.scale = e.target.value; openInstance(i); } },
        el("option", { value: "row", text: "per row (each row to its own max |score|)", selected: state.scale === "row" ? "" : null }),
        el("option", { value: "shared", text: "shared (all rows of a sequence to one max)", selected: state.scale === "shared" ? "" : null })));
    panel.replaceChildren(
      el("h3", { id: "instance-title", text: `Instance ${meta.ids[i] || ""} (#${columns.index[i]})` }),
      el("p", { class: "instance-text", text: textOf(i) }),
      el("p", { class: "legend", text: "prediction: " + probabilities.join(", ") + ". " + facts.join(" · ") }),
      scaleChoice,
      el("p", { class: "legend", text: "Red: positive (or unsigned) scores, blue: negative; the stronger the colour, the larger |score|. Hover a cell for its value (3 significant digits)." }));
    for (const sequence of meta.sequences) {
      const tokens = tokensOf(sequence.name, i);
      const rows = meta.rows.filter(r => r.sequence === sequence.name);
      if (!tokens.length) continue;
      const table = el("table", { class: "heatmap", "data-sequence": sequence.name });
      table.append(el("tr", { class: "tokens" }, el("td", { class: "name", text: sequence.title }),
        ...tokens.map(t => el("td", { text: t }))));
      const start = sequences[sequence.name].offsets[i];
      const valuesOf = rows.map(row => {
        const found = scores[row.name], scale = found.scales[i];
        return Number.isNaN(scale) ? null : Array.from(found.values.subarray(start, start + tokens.length), v => v * scale);
      });
      const sharedLimit = Math.max(0, ...valuesOf.flatMap(v => (v || []).filter(Number.isFinite).map(Math.abs)));
      rows.forEach((row, r) => {
        const values = valuesOf[r];
        const tr = el("tr", { "data-row": row.name }, el("td", { class: "name", title: row.source, text: row.title }));
        if (!values) {
          tr.append(el("td", { class: "missing", colspan: String(tokens.length), text: "not computed for this instance" }));
        } else {
          const limit = state.scale === "shared" ? sharedLimit : Math.max(0, ...values.filter(Number.isFinite).map(Math.abs));
          values.forEach((value, k) => {
            const background = colour(value, limit, row.signed);
            tr.append(el("td", { "data-value": Number.isFinite(value) ? value.toPrecision(3) : "",
              title: `${tokens[k]}: ${Number.isFinite(value) ? value.toPrecision(3) : "—"} (${row.title})`,
              style: background ? `background-color: ${background}` : null, text: tokens[k] }));
          });
        }
        table.append(tr);
      });
      panel.append(el("div", { class: "heat" }, table));
    }
  }

  function showError(error, where) {
    const node = el("p", { class: "error", text: "The page could not read its data: " + error +
      ". It needs a browser with DecompressionStream (Chrome/Edge 80+, Firefox 113+, Safari 16.4+)." });
    (where || status).replaceChildren(node);
    console.warn(error);
  }

  async function start() {
    if (!N) {
      status.textContent = "This run holds no instances for this split yet" +
        (meta.problems.length ? " (see “What this page is missing” above)." : ".");
      return;
    }
    await loadTable();
    buildControls();
    state.order = Int32Array.from({ length: N }, (_, i) => i);
    sortRows();
    performance.mark("attn-audit-table-ready");
    document.body.dataset.ready = "table";
    setTimeout(() => loadScores().then(() => {
      performance.mark("attn-audit-scores-ready");
      document.body.dataset.ready = "scores";
    }, error => showError(error)), 0);
  }

  start().catch(error => showError(error));
})();
