// The status page: renders each snapshot the server sends (view-model.ts)
// into the two tables. Live over Server-Sent Events; while the stream is
// down, polls api/status instead and says so. Every value goes into the
// DOM as text (textContent), never as markup.

const POLL_MS = 2000;
/** After the server refused the stream outright (EventSource gives up then), try it again this often. */
const RECONNECT_MS = 10000;

let stream;
let pollTimer;

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function word(text) {
  return el("span", { class: "word", "data-word": text }, text);
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function duration(seconds) {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

function count(n) {
  return n === null || n === undefined ? "–" : String(n);
}

function pair(used, capacity) {
  return `${used ?? "–"} / ${capacity ?? "–"}`;
}

/** "12 MiB left at 2.0 MiB/s, ETA 6 s", or the state when nothing moves. */
function rebuildText(r) {
  if (r === null || r === undefined) return "–";
  if (r.state === "Off") return "off";
  const left = r.bytesLeft ?? 0;
  if (left === 0 && (r.state === undefined || r.state === "Idle")) return r.state === "Idle" ? "idle" : "–";
  if (r.state === "Planning") return "planning";
  const rate = r.bytesPerSecond ? ` at ${bytes(r.bytesPerSecond)}/s` : "";
  const eta = r.etaSeconds !== null && r.etaSeconds !== undefined ? `, ETA ${duration(r.etaSeconds)}` : "";
  return `${bytes(left)} left${rate}${eta}`;
}

function channelCell(name, channel, active) {
  return el(
    "td",
    { "data-channel": name, "data-state": channel.state },
    word(channel.state),
    active === name ? el("span", { class: "note" }, "active") : null,
    el("span", { class: "address" }, channel.address ?? ""),
  );
}

function nodeRow(n) {
  return el(
    "tr",
    { "data-node": n.name, "data-phase": n.phase },
    el("td", {}, n.name, n.message ? el("span", { class: "note" }, n.message) : null),
    el("td", { "data-field": "phase" }, word(n.phase)),
    channelCell("A", n.channels.A, n.active),
    channelCell("B", n.channels.B, n.active),
    el("td", { "data-field": "active" }, n.active ?? "–"),
    el("td", { "data-field": "load" }, n.load === null ? "–" : word(n.load)),
    el("td", { "data-field": "used" }, pair(n.used, n.capacity)),
    el("td", { "data-field": "epoch", class: "number" }, count(n.epoch)),
    el("td", { "data-field": "rebuild" }, rebuildText(n.rebuild)),
  );
}

function volumeRow(v) {
  const chunks = v.chunks ?? { healthy: null, degraded: null, lost: null };
  return el(
    "tr",
    { "data-volume": v.name, "data-phase": v.phase },
    el("td", {}, v.name, v.message ? el("span", { class: "note" }, v.message) : null),
    el("td", { "data-field": "phase" }, word(v.phase)),
    el("td", { "data-field": "redundancy" }, v.redundancy),
    el("td", { "data-field": "used" }, pair(v.used, v.capacity)),
    el("td", { "data-field": "healthy", class: "number" }, count(chunks.healthy)),
    el("td", { "data-field": "degraded", class: "number" }, count(chunks.degraded)),
    el("td", { "data-field": "lost", class: "number" }, count(chunks.lost)),
    el("td", { "data-field": "read-copies", class: "number" }, count(v.readCopies)),
    el("td", { "data-field": "rebuild" }, rebuildText(v.rebuild)),
  );
}

function summary(s) {
  const up = s.nodes.filter((n) => n.phase === "Up").length;
  const healthy = s.volumes.filter((v) => v.phase === "Healthy").length;
  const epoch = s.epoch === null ? "" : `, map epoch ${s.epoch}`;
  const where = s.source === "kubernetes" ? "Kubernetes" : "local cluster";
  return `${where}: ${up} of ${s.nodes.length} nodes up, ${healthy} of ${s.volumes.length} volumes healthy${epoch}`;
}

function render(s) {
  document.querySelector("#nodes tbody").replaceChildren(...s.nodes.map(nodeRow));
  document.querySelector("#volumes tbody").replaceChildren(...s.volumes.map(volumeRow));
  document.getElementById("summary").textContent = summary(s);
  document.getElementById("taken").textContent = `snapshot taken ${new Date(s.takenAt).toLocaleString()}`;
  document.body.dataset.takenAt = s.takenAt;
}

function setConnection(state, text) {
  const badge = document.getElementById("connection");
  badge.dataset.state = state;
  badge.textContent = text ?? state;
}

async function poll() {
  try {
    const answer = await fetch("api/status", { cache: "no-store" });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    render(await answer.json());
    setConnection("polling", "polling (live stream down)");
  } catch {
    setConnection("offline", "server unreachable; retrying");
  }
}

function startPolling() {
  if (pollTimer !== undefined) return;
  setConnection("polling", "polling (live stream down)");
  void poll();
  pollTimer = setInterval(poll, POLL_MS);
}

function stopPolling() {
  if (pollTimer === undefined) return;
  clearInterval(pollTimer);
  pollTimer = undefined;
}

function connect() {
  stream = new EventSource("api/events");
  stream.addEventListener("snapshot", (event) => {
    stopPolling();
    setConnection("live");
    render(JSON.parse(event.data));
  });
  stream.addEventListener("error", () => {
    startPolling();
    // EventSource reconnects by itself unless the server refused the stream.
    if (stream.readyState === EventSource.CLOSED) setTimeout(connect, RECONNECT_MS);
  });
}

connect();
