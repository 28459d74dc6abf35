// aekit serve: the web page's script. Plain JavaScript, no build step, nothing fetched from
// outside this server. All API paths are relative, so the page also works behind a path prefix.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";

  const state = {
    models: [],
    index: null,
    model: null, // the selected ModelInfo
    current: null, // {type: "file", file, url} or {type: "sample", sample, model}
    seq: 0, // requests from an older input are ignored when they come back
    samples: {}, // model name -> samples not shown yet
    series: null, // the last series result, redrawn when the scale changes
  };

  // ---------- small helpers ----------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function fmt(x) {
    if (x === null || x === undefined || Number.isNaN(x)) return "–";
    if (!Number.isFinite(x)) return x > 0 ? "∞" : "-∞";
    const a = Math.abs(x);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return x.toExponential(3);
    return String(Number(x.toPrecision(4)));
  }

  const sizeText = (bytes) =>
    bytes < 1024 ? `${bytes} bytes` : bytes < 1048576 ? `${(bytes / 1024).toFixed(0)} kB` : `${(bytes / 1048576).toFixed(1)} MB`;
  const has = (m, endpoint) => Boolean(m && m.endpoints && m.endpoints.includes(endpoint));
  const shapeText = (shape) => (shape && shape.length ? shape.join("×") : "?");

  function formatDetail(detail) {
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      // FastAPI's validation errors: [{loc: [...], msg: "..."}]
      return detail
        .map((d) => (d && d.msg ? (d.loc ? `${d.loc.join(".")}: ` : "") + d.msg : JSON.stringify(d)))
        .join("; ");
    }
    return JSON.stringify(detail);
  }

  async function api(path, options) {
    let res;
    try {
      res = await fetch(path, options);
    } catch (e) {
      throw new Error(`cannot reach the server (${e.message})`);
    }
    const text = await res.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!res.ok) {
      const detail = body && body.detail !== undefined ? formatDetail(body.detail) : text || res.statusText;
      throw new Error(`${detail} (HTTP ${res.status})`);
    }
    if (body === null) throw new Error(`${path}: the server's answer is not JSON`);
    return body;
  }

  const postJSON = (path, payload) =>
    api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });

  function showError(message) {
    $("error-text").textContent = message;
    $("error").hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error-text").textContent = "";
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  // ---------- models ----------

  async function init() {
    wire();
    let info;
    try {
      info = await api("v1/models");
    } catch (e) {
      showError(`could not list the models: ${e.message}`);
      $("model-select").replaceChildren(el("option", { value: "", text: "no models" }));
      return;
    }
    state.models = info.models || [];
    state.index = info.index || null;
    const select = $("model-select");
    select.replaceChildren(
      ...state.models.map((m) => el("option", { value: m.name, text: `${m.name} (${m.kind.replaceAll("_", " ")})` })),
    );
    select.disabled = state.models.length === 0;
    if (state.index) {
      const ix = state.index;
      $("index-info").textContent =
        `index “${ix.name}”: ${ix.size.toLocaleString("en")} images, ${ix.metric}, ${ix.index}, ` +
        `code ${ix.code_dim}${ix.model ? `, model ${ix.model}` : ""} ·`;
    }
    if (!state.models.length) {
      showError("the server has no models");
      return;
    }
    const wanted = new URLSearchParams(location.hash.slice(1)).get("model");
    const first = state.models.find((m) => m.name === wanted) || state.models[0];
    select.value = first.name;
    selectModel(first.name);
  }

  function canSearch(m) {
    return Boolean(state.index) && m.input.type === "image";
  }

  function selectModel(name) {
    const m = state.models.find((x) => x.name === name);
    if (!m) return;
    state.model = m;
    state.seq++;
    clearError();
    setStatus("");
    history.replaceState(null, "", `#model=${encodeURIComponent(name)}`);

    const parts = [m.kind.replaceAll("_", " "), `${m.input.type} ${shapeText(m.input.shape)}`];
    if (m.dataset) parts.push(`data set ${m.dataset}`);
    if (m.threshold !== null && m.threshold !== undefined) parts.push(`threshold ${fmt(m.threshold)}`);
    parts.push(`endpoints: ${m.endpoints.join(", ") || "none"}`);
    $("model-info").textContent = parts.join(" · ");

    const type = m.input.type;
    $("image-view").hidden = type !== "image";
    $("series-view").hidden = type !== "series";
    $("table-view").hidden = type !== "table";

    if (type === "image") {
      $("sample-button").disabled = !m.dataset;
      $("sample-note").textContent = m.dataset
        ? `from the ${m.dataset} data set`
        : "this model has no data set to sample from";
      $("reconstruction-panel").hidden = !has(m, "reconstruct");
      $("score-panel").hidden = !has(m, "score");
      $("neighbours-section").hidden = !canSearch(m);
      $("k-label").hidden = !canSearch(m);
      if (state.current && state.current.type === "file") {
        runImage(state.current);
      } else {
        state.current = null;
        resetImageResults();
      }
    } else if (type === "series") {
      resetSeries();
    } else if (type === "table") {
      const cols = m.input.columns;
      $("table-columns").textContent = cols
        ? `(${cols.length} columns: ${cols.join(", ")})`
        : `(${shapeText(m.input.shape)} values)`;
      $("table-results").hidden = true;
      $("table-button").disabled = !(has(m, "score") || has(m, "reconstruct"));
    }
  }

  // ---------- images ----------

  function resetImageResults() {
    const original = $("original");
    original.hidden = true;
    original.removeAttribute("src");
    $("original-caption").textContent = "no image yet";
    const rec = $("reconstruction");
    rec.hidden = true;
    rec.removeAttribute("src");
    $("reconstruction-error").textContent = "";
    const score = $("score");
    score.className = "score empty";
    score.replaceChildren(el("p", { class: "muted small", text: "no score yet" }));
    $("neighbours").replaceChildren();
    $("neighbours-info").textContent = "";
  }

  function setImage(img, src) {
    img.classList.remove("pixelated");
    img.onload = () => {
      // small images (28×28 digits) are scaled up: keep their pixels sharp
      if (Math.max(img.naturalWidth, img.naturalHeight) <= 96) img.classList.add("pixelated");
    };
    img.onerror = () => {
      img.hidden = true; // not an image the browser can show (the server says why)
    };
    img.src = src;
    img.hidden = false;
  }

  // the request body for one input: a multipart upload for a file, JSON for a sample;
  // `target` is a model name (or, for /v1/search, the index's name)
  function requestFor(input, target, extra = {}) {
    if (input.type === "file") {
      const form = new FormData();
      form.append("file", input.file, input.file.name);
      form.append("model", target);
      for (const [k, v] of Object.entries(extra)) form.append(k, String(v));
      return { method: "POST", body: form };
    }
    return {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: target, inputs: [input.sample.input], ...extra }),
    };
  }

  function kValue() {
    let k = parseInt($("k-input").value, 10);
    if (!Number.isFinite(k) || k < 1) k = 8;
    if (state.index) k = Math.min(k, state.index.size);
    return Math.min(k, 50);
  }

  function sampleFitsIndex(input, m) {
    if (input.type !== "sample" || !state.index || !state.index.model) return true;
    const owner = state.models.find((x) => x.name === state.index.model);
    return !owner || shapeText(owner.input.shape) === shapeText(m.input.shape);
  }

  async function runImage(input) {
    const m = state.model;
    const seq = ++state.seq;
    state.current = input;
    clearError();
    resetImageResults();
    if (input.type === "file") {
      setImage($("original"), input.url);
      $("original-caption").textContent = `${input.file.name} (${sizeText(input.file.size)})`;
    } else {
      const s = input.sample;
      setImage($("original"), s.image_png);
      $("original-caption").textContent =
        `sample ${s.id}` + (s.label !== null && s.label !== undefined ? ` · label ${s.label}` : "");
    }
    $("results").setAttribute("aria-busy", "true");
    setStatus("working…");
    const started = performance.now();
    const tasks = [];
    if (has(m, "reconstruct")) {
      tasks.push(
        api("v1/reconstruct", requestFor(input, m.name)).then((r) => seq === state.seq && showReconstruction(r, input)),
      );
    }
    if (has(m, "score")) {
      tasks.push(api("v1/score", requestFor(input, m.name)).then((r) => seq === state.seq && showScore(r)));
    }
    if (canSearch(m)) {
      if (sampleFitsIndex(input, m)) {
        const k = kValue();
        tasks.push(
          api("v1/search", requestFor(input, state.index.name, { k })).then((r) => seq === state.seq && showNeighbours(r, k)),
        );
      } else {
        $("neighbours-info").textContent =
          `this sample's size differs from the index's model (${state.index.model}); upload a file to search`;
      }
    }
    const results = await Promise.allSettled(tasks);
    if (seq !== state.seq) return;
    $("results").removeAttribute("aria-busy");
    const failed = results.filter((r) => r.status === "rejected").map((r) => r.reason.message);
    if (failed.length) {
      showError([...new Set(failed)].join(" · "));
      setStatus("");
    } else {
      setStatus(`answered in ${Math.round(performance.now() - started)} ms`);
    }
  }

  function showReconstruction(r, input) {
    const url = r.images_png && r.images_png[0];
    if (url) setImage($("reconstruction"), url);
    const err = r.errors && r.errors[0];
    $("reconstruction-error").textContent = err !== undefined ? `reconstruction error ${fmt(err)}` : "";
    if (r.resized && input.type === "file") {
      const shape = state.model.input.shape;
      $("original-caption").textContent += ` · resized to ${shape.slice(-2).join("×")} for the model`;
    }
  }

  function showScore(r) {
    const score = r.scores[0];
    const thr = r.threshold;
    let flagged = r.flags ? Boolean(r.flags[0]) : null;
    if (flagged === null && thr !== null && thr !== undefined && score !== null) flagged = score > thr;
    const box = $("score");
    box.className = "score" + (flagged === true ? " flagged" : flagged === false ? " normal" : "");
    const verdict = flagged === null ? "no threshold" : flagged ? "anomaly" : "normal";
    const children = [
      el(
        "div",
        { class: "score-line" },
        el("span", { class: "score-value", text: fmt(score) }),
        el("span", { class: "verdict", text: verdict }),
      ),
    ];
    if (thr !== null && thr !== undefined) {
      const top = Math.max(2 * thr, score * 1.05, 1e-12);
      const fill = Math.min(100, Math.max(0, (100 * score) / top));
      const mark = Math.min(100, Math.max(0, (100 * thr) / top));
      const gauge = el(
        "div",
        {
          class: "gauge",
          role: "meter",
          "aria-label": "score against the threshold",
          "aria-valuemin": "0",
          "aria-valuemax": String(top),
          "aria-valuenow": String(score),
        },
        el("div", { class: "gauge-fill", style: `width: ${fill.toFixed(1)}%` }),
        el("div", { class: "gauge-mark", style: `left: ${mark.toFixed(1)}%`, title: `threshold ${fmt(thr)}` }),
      );
      children.push(gauge);
      const ratio = thr > 0 ? ` · ${fmt(score / thr)}× the threshold` : "";
      children.push(el("p", { class: "small threshold-text", text: `threshold ${fmt(thr)}${ratio}` }));
      children.push(
        el("p", {
          class: "small muted",
          text: "Higher means less like the training data; a score above the threshold is flagged as an anomaly.",
        }),
      );
    } else {
      children.push(el("p", { class: "small muted", text: "this model has no threshold" }));
    }
    box.replaceChildren(...children);
  }

  function shortId(id) {
    const s = String(id);
    const cut = s.lastIndexOf("/");
    return cut >= 0 && cut < s.length - 1 ? s.slice(cut + 1) : s;
  }

  function showNeighbours(r, k) {
    const hits = (r.results && r.results[0] && r.results[0].neighbours) || [];
    const ix = state.index;
    $("neighbours-info").textContent =
      `${hits.length} nearest of ${ix.size.toLocaleString("en")} images in index “${r.index || ix.name}” ` +
      `(${ix.metric} distance${hits.length !== k ? `; asked for ${k}` : ""})`;
    const cards = hits.map((h, i) => {
      const picture = h.image_png
        ? el("img", { src: h.image_png, alt: `neighbour ${i + 1}: ${h.id}`, class: "pixelated" })
        : el("div", { class: "no-image", text: "no image" });
      return el(
        "figure",
        { class: "neighbour", "data-id": String(h.id), title: String(h.id) },
        picture,
        el(
          "figcaption",
          {},
          el("span", { class: "rank", text: `#${i + 1}` }),
          el("span", { class: "distance", text: fmt(h.distance) }),
          el("span", { class: "nid", text: shortId(h.id) }),
          h.label !== null && h.label !== undefined ? el("span", { class: "label", text: `label ${h.label}` }) : null,
        ),
      );
    });
    $("neighbours").replaceChildren(...cards);
  }

  function useFile(file) {
    if (!file) return;
    if (!state.model || state.model.input.type !== "image") return;
    if (state.current && state.current.url) URL.revokeObjectURL(state.current.url);
    runImage({ type: "file", file, url: URL.createObjectURL(file) });
  }

  async function randomSample() {
    const m = state.model;
    if (!m || !m.dataset) return;
    const button = $("sample-button");
    button.disabled = true;
    try {
      let pool = state.samples[m.name];
      if (!pool || !pool.length) {
        const r = await api(`v1/samples?model=${encodeURIComponent(m.name)}&n=16`);
        pool = shuffle(r.samples || []);
        // don't show the same sample twice in a row when the server returns a fixed set
        const last = state.current && state.current.type === "sample" ? state.current.sample.id : null;
        if (pool.length > 1 && pool[pool.length - 1].id === last) pool.unshift(pool.pop());
        state.samples[m.name] = pool;
      }
      if (!pool.length) throw new Error("the server returned no samples");
      if (state.model !== m) return;
      if (state.current && state.current.url) URL.revokeObjectURL(state.current.url);
      await runImage({ type: "sample", sample: pool.pop(), model: m.name });
    } catch (e) {
      showError(`could not get a sample: ${e.message}`);
    } finally {
      button.disabled = !(state.model && state.model.dataset);
    }
  }

  function shuffle(a) {
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }

  // ---------- series ----------

  function resetSeries() {
    state.series = null;
    $("log-label").hidden = true;
    $("series-summary").textContent = "";
    const tl = $("timeline");
    tl.setAttribute("hidden", ""); // an SVG element has no .hidden property
    for (const c of [...tl.children]) if (c.tagName !== "title") c.remove();
    $("events").hidden = true;
    $("events").tBodies[0].replaceChildren();
  }

  async function runSeries(file) {
    if (!file) return;
    const m = state.model;
    const seq = ++state.seq;
    clearError();
    resetSeries();
    setStatus(`scoring ${file.name}…`);
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("model", m.name);
    const started = performance.now();
    try {
      const r = await api("v1/score", { method: "POST", body: form });
      if (seq !== state.seq) return;
      state.series = r;
      // a peak far above the threshold would flatten everything else: start on a log scale then
      const top = Math.max(...r.scores.filter((v) => v !== null && Number.isFinite(v)));
      $("log-scale").checked = r.threshold > 0 && top / r.threshold > 30;
      $("log-label").hidden = false;
      drawTimeline(r);
      fillEvents(r);
      setStatus(`answered in ${Math.round(performance.now() - started)} ms`);
    } catch (e) {
      if (seq !== state.seq) return;
      showError(e.message);
      setStatus("");
    }
  }

  function timeText(r, i) {
    if (r.timestamps && r.timestamps[i] !== undefined && r.timestamps[i] !== null) {
      return String(r.timestamps[i]).replace("T", " ");
    }
    return `step ${i}`;
  }

  // about four round values (1, 2 or 5 times a power of ten apart) between lo and hi
  function niceTicks(lo, hi) {
    const raw = (hi - lo) / 4;
    const p = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((f) => f * p).find((s) => s >= raw) || raw;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) ticks.push(Number(v.toPrecision(12)));
    return ticks;
  }

  // powers of ten between 10^lo and 10^hi (with 2 and 5 times them when there are few)
  function logTicks(lo, hi) {
    const ticks = [];
    const few = hi - lo < 2.5;
    for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
      for (const f of few ? [1, 2, 5] : [1]) {
        const v = f * 10 ** e;
        if (Math.log10(v) >= lo && Math.log10(v) <= hi) ticks.push(Number(v.toPrecision(6)));
      }
    }
    return ticks;
  }

  function drawTimeline(r) {
    const scores = r.scores || [];
    const n = scores.length;
    const thr = r.threshold;
    const flags = r.flags || [];
    const events = r.events || [];
    const flagged = flags.filter(Boolean).length;
    $("series-summary").textContent =
      `${n.toLocaleString("en")} time steps` +
      (n ? ` (${timeText(r, 0)} .. ${timeText(r, n - 1)})` : "") +
      ` · ${flagged.toLocaleString("en")} flagged · ${events.length} event${events.length === 1 ? "" : "s"}` +
      (thr !== null && thr !== undefined ? ` · threshold ${fmt(thr)}` : "");

    const W = 960;
    const H = 260;
    const L = 62;
    const R = 14;
    const T = 14;
    const B = 40;
    const pw = W - L - R;
    const ph = H - T - B;
    const finite = scores.filter((s) => s !== null && Number.isFinite(s));
    const hasThr = thr !== null && thr !== undefined;
    const positive = [...finite, ...(hasThr ? [thr] : [])].filter((v) => v > 0);
    const log = $("log-scale").checked && positive.length > 0;
    let lo;
    let hi;
    let y;
    let ticks;
    if (log) {
      // log10 scale; values at or below zero sit on the floor
      lo = Math.log10(Math.min(...positive)) - 0.1;
      hi = Math.log10(Math.max(...positive)) + 0.1;
      if (hi - lo < 1) hi = lo + 1;
      y = (v) => T + ph - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * ph;
      ticks = logTicks(lo, hi);
    } else {
      lo = Math.min(0, ...finite);
      hi = Math.max(...finite, hasThr ? thr : -Infinity);
      if (!Number.isFinite(hi)) hi = 1;
      hi = hi + 0.08 * (hi - lo || 1);
      if (hi === lo) hi = lo + 1;
      y = (v) => T + ph - ((v - lo) / (hi - lo)) * ph;
      ticks = niceTicks(lo, hi);
    }
    const x = (i) => L + (n > 1 ? (i / (n - 1)) * pw : pw / 2);

    const tl = $("timeline");
    for (const c of [...tl.children]) if (c.tagName !== "title") c.remove();
    const g = (cls) => tl.appendChild(svg("g", { class: cls }));

    // frame and axes
    const axes = g("axes");
    axes.append(svg("rect", { x: L, y: T, width: pw, height: ph, class: "plot-bg" }));
    for (const v of ticks) {
      axes.append(svg("line", { x1: L, x2: L + pw, y1: y(v), y2: y(v), class: "grid" }));
      axes.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, fmt(v)));
    }
    if (n) {
      for (const [i, anchor] of [
        [0, "start"],
        [Math.floor((n - 1) / 2), "middle"],
        [n - 1, "end"],
      ]) {
        axes.append(svg("text", { x: x(i), y: H - 14, "text-anchor": anchor, class: "tick" }, timeText(r, i)));
      }
    }

    // flagged events, shaded behind the score
    const ev = g("events");
    const step = n > 1 ? pw / (n - 1) : pw;
    events.forEach((e, i) => {
      const x0 = x(e.start);
      const w = Math.max(2, x(e.end) - x0 + step);
      const rect = svg("rect", { x: x0, y: T, width: w, height: ph, class: "event", "data-event": i + 1 });
      rect.append(
        svg(
          "title",
          {},
          `event ${i + 1}: ${e.start_time || `step ${e.start}`} .. ${e.end_time || `step ${e.end}`}, ` +
            `peak score ${fmt(e.peak_score)}`,
        ),
      );
      ev.append(rect);
    });

    // the score: at most two points per pixel column (the column's maximum keeps the peaks)
    const buckets = Math.min(n, Math.ceil(pw));
    let d = "";
    let pen = false;
    for (let b = 0; b < buckets; b++) {
      const i0 = Math.floor((b * n) / buckets);
      const i1 = Math.max(i0 + 1, Math.floor(((b + 1) * n) / buckets));
      let best = null;
      let at = i0;
      for (let i = i0; i < i1; i++) {
        const s = scores[i];
        if (s !== null && Number.isFinite(s) && (best === null || s > best)) {
          best = s;
          at = i;
        }
      }
      if (best === null) {
        pen = false;
        continue;
      }
      d += `${pen ? "L" : "M"}${x(at).toFixed(1)},${y(best).toFixed(1)}`;
      pen = true;
    }
    g("series").append(svg("path", { d: d || "M0,0", class: "score-path" }));

    if (thr !== null && thr !== undefined) {
      const t = g("threshold-group");
      t.append(svg("line", { x1: L, x2: L + pw, y1: y(thr), y2: y(thr), class: "threshold", id: "timeline-threshold" }));
      t.append(
        svg("text", { x: L + pw - 4, y: y(thr) - 5, "text-anchor": "end", class: "threshold-label" }, `threshold ${fmt(thr)}`),
      );
    }
    tl.removeAttribute("hidden");
  }

  function fillEvents(r) {
    const events = r.events || [];
    const body = $("events").tBodies[0];
    body.replaceChildren(
      ...events.map((e, i) =>
        el(
          "tr",
          {},
          el("td", { text: String(i + 1) }),
          el("td", { text: e.start_time ? String(e.start_time).replace("T", " ") : `step ${e.start}` }),
          el("td", { text: e.end_time ? String(e.end_time).replace("T", " ") : `step ${e.end}` }),
          el("td", { text: String(e.end - e.start + 1) }),
          el("td", { text: timeText(r, e.peak) }),
          el("td", { text: fmt(e.peak_score) }),
        ),
      ),
    );
    $("events").hidden = events.length === 0;
  }

  // ---------- tables ----------

  async function runTable() {
    const m = state.model;
    const seq = ++state.seq;
    clearError();
    const rows = $("table-input")
      .value.split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith("#"))
      .map((line) => line.split(/[,;\s]+/).filter(Boolean).map(Number));
    if (!rows.length) {
      showError("enter at least one row of numbers");
      return;
    }
    const bad = rows.findIndex((row) => row.some((v) => !Number.isFinite(v)));
    if (bad >= 0) {
      showError(`row ${bad + 1} has a value that is not a number`);
      return;
    }
    try {
      const [rec, sc] = await Promise.all([
        has(m, "reconstruct") ? postJSON("v1/reconstruct", { model: m.name, inputs: rows }) : null,
        has(m, "score") ? postJSON("v1/score", { model: m.name, inputs: rows }) : null,
      ]);
      if (seq !== state.seq) return;
      const body = $("table-results").tBodies[0];
      body.replaceChildren(
        ...rows.map((_, i) => {
          const flag = sc ? (sc.flags ? sc.flags[i] : null) : null;
          return el(
            "tr",
            { class: flag ? "flagged" : null },
            el("td", { text: String(i + 1) }),
            el("td", { text: rec ? fmt(rec.errors[i]) : "–" }),
            el("td", { text: sc ? fmt(sc.scores[i]) : "–" }),
            el("td", { text: flag === null ? "–" : flag ? "anomaly" : "normal" }),
          );
        }),
      );
      $("table-results").hidden = false;
    } catch (e) {
      if (seq === state.seq) showError(e.message);
    }
  }

  // ---------- wiring ----------

  function wire() {
    $("model-select").addEventListener("change", (e) => selectModel(e.target.value));
    $("error-close").addEventListener("click", clearError);

    const zone = $("drop-zone");
    const input = $("file-input");
    zone.addEventListener("click", (e) => {
      if (e.target !== input) input.click(); // the input sits in the zone: its own click bubbles here
    });
    zone.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        input.click();
      }
    });
    input.addEventListener("change", () => {
      useFile(input.files[0]);
      input.value = ""; // picking the same file again still fires "change"
    });
    for (const type of ["dragenter", "dragover"]) {
      zone.addEventListener(type, (e) => {
        e.preventDefault();
        zone.classList.add("over");
      });
    }
    for (const type of ["dragleave", "dragend"]) zone.addEventListener(type, () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      useFile(e.dataTransfer && e.dataTransfer.files[0]);
    });
    // a file dropped next to the zone must not make the browser navigate away
    window.addEventListener("dragover", (e) => e.preventDefault());
    window.addEventListener("drop", (e) => e.preventDefault());
    // an image pasted from the clipboard
    document.addEventListener("paste", (e) => {
      const item = [...((e.clipboardData && e.clipboardData.files) || [])].find((f) => f.type.startsWith("image/"));
      if (item) useFile(item);
    });

    $("sample-button").addEventListener("click", randomSample);
    $("k-input").addEventListener("change", () => {
      if (state.current && state.model && state.model.input.type === "image") runImage(state.current);
    });

    const series = $("series-file");
    series.addEventListener("change", () => {
      runSeries(series.files[0]);
      series.value = "";
    });
    $("table-button").addEventListener("click", runTable);
    $("log-scale").addEventListener("change", () => state.series && drawTimeline(state.series));
  }

  init();
})();
