// holocam page: reads /api/status every second and sends changes to POST /api/settings.
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
let filled = false;

function setOptions(select, values, labels = {}) {
  select.replaceChildren(...values.map((v) => new Option(labels[v] || v, v)));
}

function showError(message) {
  $("error").textContent = message || "";
}

async function send(path, init) {
  try {
    const response = await fetch(path, init);
    const body = await response.json();
    if (!response.ok) {
      showError(body.error || `HTTP ${response.status}`);
      return null;
    }
    showError("");
    return body;
  } catch (err) {
    showError(`holocam is not answering (${err.message})`);
    return null;
  }
}

async function change(settings) {
  const body = await send("/api/settings", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(settings),
  });
  if (body) render({ settings: body.settings });
}

function backgroundOptions(choices, current) {
  const values = [...choices.background, "colour"];
  const labels = { colour: "colour…", default: "holodeck" };
  for (const path of choices.uploads || []) {
    values.push(path);
    labels[path] = "upload: " + path.split("/").pop();
  }
  if (current && !values.includes(current)) {
    values.push(current);
    labels[current] = current.startsWith("#") ? `colour ${current}` : "file: " + current.split("/").pop();
  }
  setOptions($("background"), values, labels);
}

function renderStats(stats, viewers, settings) {
  $("fps").textContent = stats.fps_out.toFixed(1);
  $("latency").textContent = `${Math.round(stats.latency_ms)} ms`;
  $("mask-age").textContent = `${Math.round(stats.mask_age_ms)} ms`;
  const devices = Object.values(stats.replica_devices ?? {});
  $("replicas").textContent = stats.replicas == null ? "–"
    : devices.length ? `${stats.replicas} (${[...new Set(devices)].join(", ")})` : String(stats.replicas);
  $("segmenting-now").textContent = settings.segmenting ? "on" : "paused";
  $("viewers").textContent = viewers ? String(viewers.viewers) : "–";
}

// What the camera shows when it is not the composited person: said plainly, never hidden.
const OUTPUT_TEXT = {
  waiting: "Waiting for a segmenter: the output shows the background only",
  passthrough: "Passthrough: the raw camera picture (your room) is being sent",
  still: "Paused: the last frame is repeated",
  camera: "No mask: the raw camera picture is being sent (--no-mask camera or background none)",
};

function renderOutput(output) {
  const el = $("output-state");
  const text = OUTPUT_TEXT[output.shown];
  el.hidden = !text;
  el.dataset.shown = output.shown;
  el.textContent = text ? (output.reason ? `${text} (${output.reason})` : text) : "";
  document.body.dataset.output = output.shown;
}

function render(status) {
  const s = status.settings;
  if (status.choices && !filled) {
    setOptions($("effect"), status.choices.effect);
    setOptions($("preset"), status.choices.preset);
    setOptions($("paused"), status.choices.paused);
    setOptions($("segmenting"), status.choices.segmenting_mode, { auto: "auto (while watched)" });
    filled = true;
  }
  if (status.choices) backgroundOptions(status.choices, s.background);
  const idle = (el) => el !== document.activeElement;
  if (idle($("effect"))) $("effect").value = s.effect;
  if (idle($("background"))) $("background").value = s.background;
  if (idle($("preset"))) $("preset").value = s.preset;
  if (idle($("paused"))) $("paused").value = s.paused;
  if (idle($("segmenting"))) $("segmenting").value = s.segmenting_mode;
  if (idle($("threshold"))) $("threshold").value = s.refine.threshold;
  if (idle($("blur"))) $("blur").value = s.refine.blur;
  $("threshold-value").textContent = Number($("threshold").value).toFixed(2);
  $("blur-value").textContent = `${$("blur").value} px`;
  if (status.stats) renderStats(status.stats, status.viewers, s);
  if (status.output) renderOutput(status.output);
  document.body.dataset.effect = s.effect;   // tests and styles can see what is applied
}

async function poll() {
  const status = await send("/api/status");
  if (status) render(status);
  setTimeout(poll, POLL_MS);
}

function wire() {
  $("effect").addEventListener("change", (e) => change({ effect: e.target.value }));
  $("preset").addEventListener("change", (e) => change({ preset: e.target.value }));
  $("paused").addEventListener("change", (e) => change({ paused: e.target.value }));
  $("segmenting").addEventListener("change", (e) => change({ segmenting_mode: e.target.value }));
  $("background").addEventListener("change", (e) => {
    const colour = e.target.value === "colour";
    $("colour-row").hidden = !colour;
    change({ background: colour ? $("colour").value : e.target.value });
  });
  $("colour").addEventListener("change", (e) => change({ background: e.target.value }));
  $("bg-path-apply").addEventListener("click", () => {
    const path = $("bg-path").value.trim();
    if (path) change({ background: path });
  });
  for (const id of ["threshold", "blur"]) {
    $(id).addEventListener("input", () => {
      $("threshold-value").textContent = Number($("threshold").value).toFixed(2);
      $("blur-value").textContent = `${$("blur").value} px`;
    });
    $(id).addEventListener("change", (e) => change({ refine: { [id]: Number(e.target.value) } }));
  }
  $("upload").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    const form = new FormData();
    form.append("file", file);
    const body = await send("/api/backgrounds", { method: "POST", body: form });
    e.target.value = "";
    if (body) render({ settings: body.settings });
  });
  $("controls").addEventListener("submit", (e) => e.preventDefault());
  // The stream ends when the sink restarts: reconnect instead of showing a broken image.
  $("preview").addEventListener("error", () => {
    setTimeout(() => { $("preview").src = `/stream.mjpg?t=${Date.now()}`; }, 1000);
  });
}

wire();
poll();
