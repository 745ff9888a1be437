// The clamp3 web page: search a music library by text, by file or by similarity, label the results
// zero-shot, and browse a 2-D map of the library; in a library with segments, find the passage of each
// piece that matches (highlighted in its score, its player started there). Plain ES2020, no framework,
// no build step.
// Every string that comes from the API is put into the page as text (textContent, attributes),
// never as HTML.
"use strict";

const PAGE_PARAMS = new URLSearchParams(window.location.search);
const TOKEN = PAGE_PARAMS.get("token");
const K = 10;
const KIND_FILTERS = {
  all: null,
  sheet: ["abc", "musicxml"],
  midi: ["midi", "mtf"],
  audio: ["audio"],
  text: ["text", "image"],
};
const KIND_NAMES = {
  abc: "ABC",
  musicxml: "MusicXML",
  midi: "MIDI",
  mtf: "MTF",
  audio: "Audio",
  text: "Text",
  image: "Image",
  features: "Features",
  vectors: "Vectors",
};
const TEXT_PREVIEW_CHARS = 600;
const PASSAGES_SHOWN = 5; // "Where does it match?" lists this many passages
const HAS_PASSAGES = new Set(["score", "audio", "midi"]);
const SVG_NS = "http://www.w3.org/2000/svg";
const MAP_WIDTH = 1000;
const MAP_HEIGHT = 640;
const MAP_PAD = 36;

const state = {
  query: null, // {type: "text"|"like"|"file", value, label}
  hits: [],
  generation: 0,
  mapLoaded: null, // a promise, once the map was asked for
  mapPoints: new Map(),
  selectedId: null,
  segments: false, // the library keeps the passages of its pieces
};

// ---------------------------------------------------------------- small helpers

const $ = (id) => document.getElementById(id);

/** An element with attributes (`class`, `text`, `data`, properties) and children (nodes or strings). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function s(tag, attrs = {}) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") el.textContent = String(value);
    else if (key === "data") Object.assign(el.dataset, value);
    else if (key === "class") el.setAttribute("class", value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
}

function fileName(path) {
  if (!path) return "";
  return String(path).split(/[\\/]/).pop();
}

function titleOf(item) {
  return item.title || fileName(item.path) || item.id;
}

function kindName(kind) {
  return KIND_NAMES[kind] || kind || "item";
}

function kindBadge(kind) {
  return h("span", { class: `badge kind-${safeClass(kind)}`, text: kindName(kind) });
}

function safeClass(value) {
  return String(value || "other").replace(/[^a-z0-9_-]/gi, "");
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** Calls the JSON API; a failure throws an ApiError carrying the server's one-line `detail`. */
async function api(path, { method = "GET", json, form } = {}) {
  const headers = {};
  if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body });
  } catch {
    throw new ApiError(0, "The server cannot be reached. Is clamp3 serve still running?");
  }
  const type = response.headers.get("content-type") || "";
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`.trim();
    if (type.includes("json")) {
      try {
        const data = await response.json();
        if (data && typeof data.detail === "string") detail = data.detail;
      } catch {
        // keep the status line
      }
    }
    throw new ApiError(response.status, detail);
  }
  return type.includes("json") ? response.json() : response.text();
}

function itemPath(id, tail = "") {
  return `api/items/${encodeURIComponent(id)}${tail}`;
}

/** The URL of an item's media (the token in the query: audio and img elements send no headers). */
function mediaUrl(id, extra = {}) {
  const query = new URLSearchParams(extra);
  if (TOKEN) query.set("token", TOKEN);
  const tail = query.toString();
  return itemPath(id, "/media") + (tail ? `?${tail}` : "");
}

function selectedKinds() {
  return KIND_FILTERS[$("kind-filter").value] || null;
}

/** Whether searches name each hit's best passage ("Find passages", for a library with segments). */
function findPassages() {
  return state.segments && $("find-passages").checked;
}

// ---------------------------------------------------------------- error banner and status

function showError(message) {
  $("error-text").textContent = message;
  $("error-banner").hidden = false;
}

function hideError() {
  $("error-banner").hidden = true;
  $("error-text").textContent = "";
}

function setBusy(busy, message = "") {
  document.body.classList.toggle("busy", busy);
  $("search-button").disabled = busy;
  if (busy) $("results-status").textContent = message;
}

// ---------------------------------------------------------------- searching

/** Runs one search; a newer search makes an older one's answer go unused. */
async function runSearch(query, request) {
  const mine = ++state.generation;
  hideError();
  showView("results");
  setBusy(true, query.type === "file" ? `Listening to ${query.label}…` : "Searching…");
  const started = performance.now();
  try {
    const data = await request();
    if (mine !== state.generation) return;
    state.query = query;
    showResults(query, data, performance.now() - started);
  } catch (error) {
    if (mine !== state.generation) return;
    showError(error.message);
    $("results-status").textContent = "";
  } finally {
    if (mine === state.generation) setBusy(false);
  }
}

function searchText(text) {
  const value = text.trim();
  if (!value) {
    $("search-input").focus();
    return;
  }
  $("search-input").value = value;
  updateUrl({ q: value, like: null });
  const body = { text: value, k: K };
  const kinds = selectedKinds();
  if (kinds) body.kinds = kinds;
  if (findPassages()) body.segments = true;
  runSearch({ type: "text", value, label: value }, () => api("api/search", { method: "POST", json: body }));
}

function searchLike(id, title) {
  $("search-input").value = "";
  updateUrl({ q: null, like: id });
  const query = new URLSearchParams({ k: String(K) });
  const kinds = selectedKinds();
  if (kinds) query.set("kinds", kinds.join(","));
  if (findPassages()) query.set("segments", "true");
  runSearch({ type: "like", value: id, label: title || id }, () =>
    api(`${itemPath(id, "/similar")}?${query}`),
  );
}

function searchFile(file) {
  if (!file) return;
  $("search-input").value = "";
  updateUrl({ q: null, like: null });
  const kinds = selectedKinds();
  const passages = findPassages();
  runSearch({ type: "file", value: file, label: file.name }, () => {
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("k", String(K));
    if (kinds) form.append("kinds", kinds.join(","));
    if (passages) form.append("segments", "true");
    return api("api/search", { method: "POST", form });
  });
}

function rerun() {
  const query = state.query;
  if (!query) return;
  if (query.type === "text") searchText(query.value);
  else if (query.type === "like") searchLike(query.value, query.label);
  else searchFile(query.value);
}

/** Keeps the address shareable: `?q=` (or `?like=`), `&kind=`, `&passages=1`, and the token if there
 * was one. */
function updateUrl(changes) {
  const params = new URLSearchParams(window.location.search);
  for (const [key, value] of Object.entries(changes)) {
    if (value === null || value === undefined || value === "") params.delete(key);
    else params.set(key, value);
  }
  const kind = $("kind-filter").value;
  if (kind === "all") params.delete("kind");
  else params.set("kind", kind);
  if (findPassages()) params.set("passages", "1");
  else params.delete("passages");
  const query = params.toString();
  history.replaceState(null, "", `${window.location.pathname}${query ? `?${query}` : ""}`);
}

// ---------------------------------------------------------------- results

function headingFor(query) {
  if (query.type === "text") return `Results for “${query.label}”`;
  if (query.type === "like") return `More like ${query.label}`;
  return `Like ${query.label}`;
}

function showResults(query, data, elapsedMs) {
  const hits = Array.isArray(data.hits) ? data.hits : [];
  state.hits = hits;
  $("welcome").hidden = true;
  $("results-heading").textContent = headingFor(query);
  document.title = `${query.type === "file" ? query.label : headingFor(query)} · clamp3`;
  const seconds = (elapsedMs / 1000).toFixed(2);
  const passages = hits.some((hit) => hit.span) ? ", each with the passage that matches best" : "";
  $("results-status").textContent = hits.length
    ? `Top ${hits.length} of ${plural(data.candidates, "item")}, best first${passages} · ${seconds} s`
    : "Nothing matched. Try other words or another kind of result.";
  const list = $("results");
  list.replaceChildren(...hits.map(renderHit));
  $("zs-summary").replaceChildren();
  markResultsOnMap();
}

function renderHit(hit) {
  const score = Number(hit.score);
  const title = titleOf(hit);
  const openButton = h("button", {
    type: "button",
    class: "hit-title",
    title: "Show details",
    text: title,
  });
  openButton.addEventListener("click", () => showDetail(hit.id));
  const more = h("button", { type: "button", class: "button small more-like", text: "More like this" });
  more.addEventListener("click", () => searchLike(hit.id, title));
  const bar = h("span", { class: "score-bar" }, h("span", { class: "score-fill" }));
  bar.firstChild.style.width = `${Math.max(0, Math.min(1, score)) * 100}%`;
  return h(
    "li",
    { class: `hit kind-${safeClass(hit.kind)}`, data: { itemId: hit.id, kind: hit.kind || "" } },
    h("div", { class: "hit-rank", text: hit.rank }),
    h(
      "div",
      { class: "hit-body" },
      h(
        "div",
        { class: "hit-head" },
        kindBadge(hit.kind),
        h("div", { class: "hit-names" }, openButton, hit.composer ? h("span", { class: "hit-composer", text: hit.composer }) : null),
        hit.span ? h("span", { class: "chip span-chip", title: "The passage that matches best", text: spanText(hit.span) }) : null,
        h("span", { class: "hit-score", title: "Cosine similarity to the query" }, bar, h("span", { class: "score-value", text: score.toFixed(3) })),
      ),
      h("div", { class: "hit-path", title: hit.path || "", text: fileName(hit.path) }),
      preview(hit, hit.span),
      h("div", { class: "hit-actions" }, more, h("span", { class: "zs-label", hidden: true })),
    ),
  );
}

/** What an item looks or sounds like: a player, an engraved score, a picture or its text; with `span`
 * (a passage), the score shows it highlighted and the player starts at it. */
function preview(item, span = null) {
  const title = titleOf(item);
  const box = h("div", { class: `preview preview-${safeClass(item.media || "none")}` });
  const seconds = span && span.unit === "second" ? span : null;
  switch (item.media) {
    case "audio": {
      const player = h("audio", { controls: true, preload: "metadata", src: mediaUrl(item.id) });
      box.append(seconds ? h("div", { class: "player-row" }, player, playFromButton(player, seconds)) : player);
      if (seconds) startAt(player, seconds.start);
      break;
    }
    case "midi": {
      const player = h("audio", { controls: true, preload: "none", src: mediaUrl(item.id, { render: "audio" }) });
      const note = h("span", { class: "muted small-note", hidden: true });
      player.addEventListener("error", () => {
        note.textContent = "This server cannot play MIDI (no FluidSynth); download it instead.";
        note.hidden = false;
      });
      const download = h("a", {
        class: "download",
        href: mediaUrl(item.id),
        download: fileName(item.path) || "item.mid",
        text: "Download MIDI",
      });
      box.append(h("div", { class: "midi-row" }, player, seconds ? playFromButton(player, seconds) : null, download), note);
      if (seconds) startAt(player, seconds.start);
      break;
    }
    case "score": {
      const bars = span && span.unit === "bar" ? span : null;
      const img = h("img", { class: "score", src: scoreUrl(item.id, bars), alt: scoreAlt(title, bars), decoding: "async" });
      const frame = h("div", { class: "score-frame" }, img);
      const toggle = h("button", { type: "button", class: "score-toggle", text: "Show the whole page" });
      toggle.addEventListener("click", () => {
        const open = frame.classList.toggle("open");
        toggle.textContent = open ? "Show less" : "Show the whole page";
        showHighlight(frame, img);
      });
      img.addEventListener("load", () => {
        // no toggle when the whole page already fits (measured only where the frame is laid out)
        if (frame.clientWidth > 0) toggle.hidden = img.getBoundingClientRect().height <= frame.clientHeight + 1;
        showHighlight(frame, img);
      });
      img.addEventListener("error", () => {
        frame.replaceWith(h("p", { class: "muted", text: "The score could not be engraved." }));
        toggle.hidden = true;
      });
      box.append(frame, toggle);
      break;
    }
    case "image":
      box.append(
        h(
          "figure",
          { class: "picture" },
          h("img", { src: mediaUrl(item.id), alt: item.caption || title, decoding: "async" }),
          item.caption ? h("figcaption", { text: item.caption }) : null,
        ),
      );
      break;
    case "text": {
      const pre = h("pre", { class: "text-preview", text: item.caption || "Loading…" });
      box.append(pre);
      api(mediaUrl(item.id))
        .then((text) => {
          const value = String(text).trim();
          pre.textContent = value.length > TEXT_PREVIEW_CHARS ? `${value.slice(0, TEXT_PREVIEW_CHARS)}…` : value;
        })
        .catch((error) => {
          pre.textContent = error.message;
          pre.classList.add("failed");
        });
      break;
    }
    default:
      box.append(h("p", { class: "muted", text: "No preview for this kind of item." }));
  }
  return box;
}

// ---------------------------------------------------------------- passages

/** `m:ss` of a time in seconds (to the nearest second). */
function clock(seconds) {
  const total = Math.max(0, Math.round(Number(seconds)));
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

/** A passage as the page names it: "bars 9-12" or "0:12-0:18". */
function spanText(span) {
  if (span.unit === "bar") return span.start === span.end ? `bar ${span.start}` : `bars ${span.start}-${span.end}`;
  return `${clock(span.start)}-${clock(span.end)}`;
}

function scoreUrl(id, bars) {
  return bars ? mediaUrl(id, { bars: `${bars.start}-${bars.end}` }) : mediaUrl(id);
}

function scoreAlt(title, bars) {
  return bars ? `Score of ${title}, ${spanText(bars)} highlighted` : `Score of ${title}`;
}

/** Moves `player` to `seconds` now, or as soon as it knows its duration (it may load nothing before
 * it is played). */
function startAt(player, seconds) {
  const seek = () => {
    player.currentTime = Number(seconds);
  };
  if (player.readyState >= 1) seek();
  else player.addEventListener("loadedmetadata", seek, { once: true });
}

function playFromButton(player, span) {
  const button = h("button", { type: "button", class: "button small play-from", text: `▶ Play from ${clock(span.start)}` });
  button.addEventListener("click", () => {
    startAt(player, span.start);
    player.play().catch(() => {}); // a player that cannot play says so itself
  });
  return button;
}

/** Shows `span` in an item's preview: its bars highlighted in the score, or its player moved there and
 * playing. */
function showSpan(box, item, span) {
  const img = box.querySelector("img.score");
  if (img && span.unit === "bar") {
    img.src = scoreUrl(item.id, span);
    img.alt = scoreAlt(titleOf(item), span);
    return;
  }
  const player = box.querySelector("audio");
  if (player && span.unit === "second") {
    startAt(player, span.start);
    player.play().catch(() => {});
  }
}

/** Slides a clipped score so that its highlighted bars are in view. The engraving says where they are
 * (data-highlight-top and -bottom, fractions of the page's height); an <img> cannot tell, so the page
 * asks for the same SVG as text. */
async function showHighlight(frame, img) {
  img.style.transform = "";
  const url = new URL(img.src, window.location.href);
  if (!url.searchParams.has("bars") || frame.classList.contains("open") || frame.clientHeight <= 0) return;
  const height = img.getBoundingClientRect().height;
  if (height <= frame.clientHeight + 1) return;
  if (img.dataset.highlightFor !== img.src) {
    try {
      const svg = new DOMParser().parseFromString(await api(img.src), "image/svg+xml").documentElement;
      img.dataset.highlightTop = svg.getAttribute("data-highlight-top") || "";
      img.dataset.highlightBottom = svg.getAttribute("data-highlight-bottom") || "";
      img.dataset.highlightFor = img.src;
    } catch {
      return; // the score shows from its top
    }
    if (new URL(img.src, window.location.href).href !== url.href || frame.classList.contains("open")) return;
  }
  const top = Number(img.dataset.highlightTop);
  const bottom = Number(img.dataset.highlightBottom);
  if (!img.dataset.highlightTop || !Number.isFinite(top) || !Number.isFinite(bottom)) return;
  const view = frame.clientHeight / height; // the share of the page the frame shows
  let wanted = 0; // the top of the page (with the title) while the bars show there
  if (bottom - top <= view && bottom > view * 0.9) wanted = (top + bottom) / 2 - view / 2;
  else if (bottom - top > view && top > view / 3) wanted = top - 0.02;
  const shift = Math.max(0, Math.min(wanted, 1 - view));
  img.style.transform = `translateY(${(-shift * 100).toFixed(3)}%)`;
}

/** "Where does it match?": the passages of an item ranked for the current query, each one a button
 * that shows it in the item's preview. */
function locateAction(item, box) {
  if (!state.segments || !state.query || !HAS_PASSAGES.has(item.media)) return null;
  const button = h("button", { type: "button", class: "button locate", text: "Where does it match?" });
  const list = h("ol", { class: "passages", "aria-label": "Passages, best first" });
  const status = h("p", { class: "muted passages-status", "aria-live": "polite" });
  button.addEventListener("click", async () => {
    const query = state.query; // the query of the results shown now
    button.disabled = true;
    status.textContent = "Looking for the passages…";
    list.replaceChildren();
    try {
      const data = await api(itemPath(item.id, "/locate"), locateRequest(query));
      if (state.selectedId !== item.id) return;
      status.textContent = `Passages that match ${query.type === "text" ? `“${query.label}”` : query.label}, best first:`;
      list.replaceChildren(...data.spans.map((span) => passageRow(span, item, box, list)));
    } catch (error) {
      status.textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });
  return h("div", { class: "locate-box" }, button, status, list);
}

function locateRequest(query) {
  if (query.type === "file") {
    const form = new FormData();
    form.append("file", query.value, query.value.name);
    form.append("k", String(PASSAGES_SHOWN));
    return { method: "POST", form };
  }
  const key = query.type === "text" ? "text" : "like";
  return { method: "POST", json: { [key]: query.value, k: PASSAGES_SHOWN } };
}

function passageRow(span, item, box, list) {
  const button = h(
    "button",
    { type: "button", class: "passage", "aria-pressed": "false", data: { start: span.start, end: span.end, unit: span.unit } },
    h("span", { class: "passage-name", text: spanText(span) }),
    h("span", { class: "passage-score", title: "Cosine similarity to the query", text: Number(span.score).toFixed(3) }),
  );
  button.addEventListener("click", () => {
    for (const other of list.querySelectorAll("button.passage")) other.setAttribute("aria-pressed", String(other === button));
    showSpan(box, item, span);
  });
  return h("li", {}, button);
}

// ---------------------------------------------------------------- zero-shot labels

function parseLabels(text) {
  return [...new Set(text.split(",").map((part) => part.trim()).filter(Boolean))];
}

async function classifyResults() {
  const labels = parseLabels($("zs-labels").value);
  hideError();
  if (labels.length < 2) {
    showError("Give at least two labels, separated by commas (for example: calm, lively).");
    return;
  }
  const hits = [...document.querySelectorAll("#results .hit")];
  if (!hits.length) {
    showError("Search first: the labels are given to the results shown.");
    return;
  }
  const ids = hits.map((el) => el.dataset.itemId);
  const button = $("zs-run");
  button.disabled = true;
  button.textContent = "Classifying…";
  try {
    const data = await api("api/classify", { method: "POST", json: { labels, ids } });
    const counts = new Map(data.labels.map((label) => [label, 0]));
    data.results.forEach((result, i) => {
      const chip = hits[i] && hits[i].querySelector(".zs-label");
      if (!chip || hits[i].dataset.itemId !== result.item) return;
      const p = result.probabilities[result.top];
      chip.textContent = `${result.top} · ${Math.round(p * 100)}%`;
      chip.dataset.label = result.top;
      chip.title = Object.entries(result.probabilities)
        .sort((a, b) => b[1] - a[1])
        .map(([label, value]) => `${label}: ${(value * 100).toFixed(1)}%`)
        .join("\n");
      chip.hidden = false;
      counts.set(result.top, (counts.get(result.top) || 0) + 1);
    });
    renderLabelSummary(counts, data.results.length);
  } catch (error) {
    showError(error.message);
  } finally {
    button.disabled = false;
    button.textContent = "Classify results";
  }
}

function renderLabelSummary(counts, total) {
  const rows = [...counts.entries()].map(([label, n]) => {
    const fill = h("span", { class: "zs-fill" });
    fill.style.width = `${total ? (n / total) * 100 : 0}%`;
    return h(
      "li",
      {},
      h("span", { class: "zs-name", text: label }),
      h("span", { class: "zs-bar" }, fill),
      h("span", { class: "zs-count", text: n }),
    );
  });
  $("zs-summary").replaceChildren(...rows);
}

// ---------------------------------------------------------------- item details (side panel)

async function showDetail(id) {
  const panel = $("detail");
  const body = $("detail-body");
  state.selectedId = id;
  markSelectedOnMap();
  panel.dataset.itemId = id;
  panel.hidden = false;
  $("map-hint").hidden = true;
  $("detail-title").textContent = state.mapPoints.get(id)?.title || "Loading…";
  body.replaceChildren(h("p", { class: "muted", text: "Loading…" }));
  try {
    const item = await api(itemPath(id));
    if (state.selectedId !== id) return;
    $("detail-title").textContent = titleOf(item);
    body.replaceChildren(...renderDetail(item));
  } catch (error) {
    if (state.selectedId !== id) return;
    body.replaceChildren(h("p", { class: "muted", text: error.message }));
  }
}

function renderDetail(item) {
  const facts = h("dl", { class: "facts" });
  const fact = (name, value) => {
    if (value === null || value === undefined || value === "") return;
    facts.append(h("dt", { text: name }), h("dd", { text: value }));
  };
  if (item.composer) fact("Composer", item.composer);
  if (item.duration_s) fact("Duration", formatDuration(item.duration_s));
  if (item.bars) fact("Bars", item.bars);
  fact("File", fileName(item.path));
  if (item.added_at) fact("Added", new Date(item.added_at).toLocaleDateString());
  const tags = parseTags(item.tags);
  const more = h("button", { type: "button", class: "button primary more-like", text: "More like this" });
  more.addEventListener("click", () => searchLike(item.id, titleOf(item)));
  const hit = state.hits.find((shown) => shown.id === item.id);
  const box = preview(item, hit ? hit.span : null);
  return [
    h("div", { class: "detail-kind" }, kindBadge(item.kind), h("code", { class: "item-id", text: item.id })),
    box,
    locateAction(item, box),
    facts,
    tags.length ? h("div", { class: "tags" }, tags.map(([k, v]) => h("span", { class: "chip tag", text: `${k}: ${v}` }))) : null,
    h("div", { class: "detail-actions" }, more),
  ].filter(Boolean);
}

function parseTags(tags) {
  if (!tags) return [];
  try {
    const value = typeof tags === "string" ? JSON.parse(tags) : tags;
    if (!value || typeof value !== "object") return [];
    return Object.entries(value)
      .filter(([, v]) => v !== null && v !== "" && typeof v !== "object")
      .slice(0, 12);
  } catch {
    return [];
  }
}

function formatDuration(seconds) {
  const total = Math.round(Number(seconds));
  const m = Math.floor(total / 60);
  return `${m}:${String(total % 60).padStart(2, "0")}`;
}

function closeDetail() {
  state.selectedId = null;
  $("detail").hidden = true;
  $("detail").removeAttribute("data-item-id");
  $("map-hint").hidden = false;
  markSelectedOnMap();
}

// ---------------------------------------------------------------- the map

function showView(view) {
  document.body.dataset.view = view;
  $("view-results").hidden = view !== "results";
  $("view-map").hidden = view !== "map";
  $("tab-results").setAttribute("aria-selected", String(view === "results"));
  $("tab-map").setAttribute("aria-selected", String(view === "map"));
  if (view === "map") loadMap();
}

function loadMap() {
  if (!state.mapLoaded) {
    $("map").dataset.state = "loading";
    state.mapLoaded = api("api/map?limit=5000")
      .then((data) => drawMap(data.points || []))
      .catch((error) => {
        state.mapLoaded = null;
        $("map").dataset.state = "failed";
        showError(error.message);
      });
  }
  return state.mapLoaded;
}

function drawMap(points) {
  const map = $("map");
  const radius = points.length > 2000 ? 3 : points.length > 300 ? 5 : 9;
  const toX = (x) => MAP_PAD + ((Number(x) + 1) / 2) * (MAP_WIDTH - 2 * MAP_PAD);
  const toY = (y) => MAP_PAD + ((1 - Number(y)) / 2) * (MAP_HEIGHT - 2 * MAP_PAD);
  const grid = s("g", { class: "grid" });
  for (const t of [-1, -0.5, 0, 0.5, 1]) {
    grid.append(
      s("line", { x1: toX(t), y1: MAP_PAD / 2, x2: toX(t), y2: MAP_HEIGHT - MAP_PAD / 2, class: t ? "" : "axis" }),
      s("line", { x1: MAP_PAD / 2, y1: toY(t), x2: MAP_WIDTH - MAP_PAD / 2, y2: toY(t), class: t ? "" : "axis" }),
    );
  }
  const layer = s("g", { class: "points" });
  const counts = new Map();
  state.mapPoints.clear();
  for (const point of points) {
    state.mapPoints.set(point.id, point);
    counts.set(point.kind, (counts.get(point.kind) || 0) + 1);
    const circle = s("circle", {
      class: `point kind-${safeClass(point.kind)}`,
      cx: toX(point.x).toFixed(1),
      cy: toY(point.y).toFixed(1),
      r: radius,
      tabindex: 0,
      role: "button",
      "aria-label": `${kindName(point.kind)}: ${titleOf(point)}`,
      data: { itemId: point.id, kind: point.kind || "" },
    });
    layer.append(circle);
  }
  map.replaceChildren(grid, layer);
  map.dataset.state = "ready";
  $("map-legend").replaceChildren(
    ...[...counts.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([kind, n]) =>
        h("li", { class: `kind-${safeClass(kind)}` }, h("span", { class: "swatch" }), `${kindName(kind)} `, h("span", { class: "muted", text: n })),
      ),
    h("li", { id: "legend-results", class: "legend-note", hidden: true }, h("span", { class: "swatch ring" }), "in the current results"),
  );
  $("map-status").textContent = `${plural(points.length, "item")}. Similar items lie close together: hover a point for its title, click it to open it.`;
  markResultsOnMap();
  markSelectedOnMap();
}

function pointFrom(event) {
  const target = event.target;
  return target instanceof SVGCircleElement && target.classList.contains("point") ? target : null;
}

function showTooltip(circle) {
  const point = state.mapPoints.get(circle.dataset.itemId);
  if (!point) return;
  const tip = $("map-tooltip");
  tip.replaceChildren(kindBadge(point.kind), h("span", { text: titleOf(point) }));
  tip.hidden = false;
  const card = tip.parentElement.getBoundingClientRect();
  const dot = circle.getBoundingClientRect();
  const half = tip.offsetWidth / 2 + 6;
  const left = dot.left + dot.width / 2 - card.left;
  tip.style.left = `${Math.min(Math.max(left, half), card.width - half)}px`;
  tip.style.top = `${dot.top - card.top - 8}px`;
}

function hideTooltip() {
  $("map-tooltip").hidden = true;
}

function markResultsOnMap() {
  const shown = new Set(state.hits.map((hit) => hit.id));
  const note = $("legend-results");
  if (note) note.hidden = shown.size === 0;
  for (const circle of document.querySelectorAll("#map .point")) {
    circle.classList.toggle("in-results", shown.has(circle.dataset.itemId));
  }
}

function markSelectedOnMap() {
  const map = $("map");
  map.querySelector(".selected-label")?.remove();
  for (const circle of map.querySelectorAll(".point")) {
    const selected = circle.dataset.itemId === state.selectedId;
    circle.classList.toggle("selected", selected);
    if (!selected) continue;
    const point = state.mapPoints.get(circle.dataset.itemId);
    const x = Number(circle.getAttribute("cx"));
    const right = x < MAP_WIDTH * 0.7;
    const label = s("text", {
      class: "selected-label",
      x: right ? x + 16 : x - 16,
      y: Number(circle.getAttribute("cy")) + 5,
      "text-anchor": right ? "start" : "end",
    });
    label.textContent = point ? titleOf(point) : "";
    circle.parentNode.append(circle, label); // drawn last: on top
  }
}

// ---------------------------------------------------------------- library header

async function loadStats() {
  try {
    const stats = await api("api/stats");
    const name = fileName(String(stats.uri || "").replace(/[\\/]+$/, "")) || "library";
    $("library-name").textContent = name;
    $("library-size").textContent = `${plural(stats.rows, "item")} · model ${stats.model}`;
    const kinds = Object.entries(stats.by_kind || {}).sort((a, b) => b[1] - a[1]);
    $("library-kinds").replaceChildren(
      ...kinds.map(([kind, n]) => h("span", { class: `kind-count kind-${safeClass(kind)}`, title: `${n} ${kindName(kind)}` }, h("span", { class: "swatch" }), `${n} ${kindName(kind)}`)),
    );
    document.body.dataset.rows = String(stats.rows);
    state.segments = Boolean(stats.segments);
    $("passages-toggle").hidden = !state.segments;
  } catch (error) {
    $("library-name").textContent = "Library unavailable";
    showError(error.message);
  }
}

// ---------------------------------------------------------------- drag and drop

function setUpDrop() {
  let depth = 0;
  const zone = $("drop-zone");
  const hasFiles = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");
  const show = (on) => {
    zone.hidden = !on;
    document.body.classList.toggle("dragging", on);
  };
  window.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth += 1;
    show(true);
  });
  window.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  window.addEventListener("dragleave", (event) => {
    if (!hasFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (depth === 0) show(false);
  });
  window.addEventListener("drop", (event) => {
    if (!event.dataTransfer) return;
    event.preventDefault();
    depth = 0;
    show(false);
    const file = event.dataTransfer.files && event.dataTransfer.files[0];
    if (file) searchFile(file);
  });
}

// ---------------------------------------------------------------- start

function start() {
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    searchText($("search-input").value);
  });
  $("kind-filter").addEventListener("change", () => {
    if (state.query) rerun();
    else updateUrl({});
  });
  $("find-passages").addEventListener("change", () => {
    if (state.query) rerun();
    else updateUrl({});
  });
  $("query-file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    searchFile(file);
    event.target.value = "";
  });
  for (const example of document.querySelectorAll(".example")) {
    example.addEventListener("click", () => searchText(example.textContent));
  }
  $("error-close").addEventListener("click", hideError);
  $("zs-form").addEventListener("submit", (event) => {
    event.preventDefault();
    classifyResults();
  });
  $("detail-close").addEventListener("click", closeDetail);
  $("tab-results").addEventListener("click", () => showView("results"));
  $("tab-map").addEventListener("click", () => showView("map"));

  const map = $("map");
  map.addEventListener("mouseover", (event) => {
    const circle = pointFrom(event);
    if (circle) showTooltip(circle);
  });
  map.addEventListener("mouseout", (event) => {
    if (pointFrom(event)) hideTooltip();
  });
  map.addEventListener("click", (event) => {
    const circle = pointFrom(event);
    if (circle) showDetail(circle.dataset.itemId);
  });
  map.addEventListener("keydown", (event) => {
    const circle = pointFrom(event);
    if (circle && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      showDetail(circle.dataset.itemId);
    }
  });
  map.addEventListener("focusin", (event) => {
    const circle = pointFrom(event);
    if (circle) showTooltip(circle);
  });
  map.addEventListener("focusout", hideTooltip);

  setUpDrop();
  const kind = PAGE_PARAMS.get("kind");
  if (kind && kind in KIND_FILTERS) $("kind-filter").value = kind;
  $("find-passages").checked = PAGE_PARAMS.get("passages") === "1";
  // the query of the address waits for the library's header: whether it keeps passages
  loadStats().then(runAddressQuery);
}

/** Runs the search the page's address asks for (`?q=` or `?like=`), if any. */
function runAddressQuery() {
  const q = PAGE_PARAMS.get("q");
  const like = PAGE_PARAMS.get("like");
  if (q && q.trim()) {
    searchText(q);
  } else if (like) {
    api(itemPath(like))
      .then((item) => searchLike(like, titleOf(item)))
      .catch((error) => showError(error.message));
  } else {
    $("search-input").focus();
  }
}

document.addEventListener("DOMContentLoaded", start);
