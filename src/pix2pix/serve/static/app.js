// pix2pix serve: draw or upload an input, see its translation. No dependencies; talks to /api only.
"use strict";

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const overlay = $("overlay");
const ink = canvas.getContext("2d", { willReadFrequently: true });
const preview = overlay.getContext("2d");
const output = $("output");
const outputFrame = $("output-frame");

const LIVE_DELAY_MS = 250; // pause in drawing before a live translation
const LIVE_MAX_WAIT_MS = 900; // a live translation at least this often while drawing
const HISTORY = 40; // undo steps kept
const MAX_SIDE = 1024; // uploads larger than this are drawn scaled down (the original is sent until drawn on)

const state = {
  info: null,
  labels: false, // inputs are label maps: palette colours, brush and rectangle, no anti-aliasing
  tool: "brush",
  color: "#000000",
  background: "#ffffff",
  history: [],
  stroke: null, // the pointer's path while drawing
  upload: null, // an uploaded file, sent as it is until drawn on
  inflight: false,
  again: false,
  timer: null,
  firstChange: 0,
  translations: 0,
  outputUrl: null,
};

// --- start ------------------------------------------------------------------------------------------------------

async function start() {
  try {
    const response = await fetch("/api/info");
    state.info = await response.json();
  } catch (error) {
    return setStatus("The server does not answer: is `pix2pix serve` still running?", true);
  }
  const info = state.info;
  state.labels = Boolean(info.palette);
  document.body.classList.toggle("labels", state.labels);
  $("model").textContent = describeModel(info);
  $("mode").value = info.mode;
  buildTools();
  buildPalette();
  buildExamples();
  resizeCanvas(info.crop_size, info.crop_size);
  clearCanvas();
  bindEvents();
  if (info.examples > 0) {
    await loadExample(0);
  } else {
    translate();
  }
}

function describeModel(info) {
  const parts = [
    info.direction,
    `${info.input_nc} → ${info.output_nc} channels`,
    `${info.crop_size} px`,
    info.step !== null ? `step ${info.step}` : null,
    `${info.backend} ${info.dtype}${info.compiled ? " compiled" : ""} on ${info.device}`,
  ];
  return parts.filter(Boolean).join(" · ");
}

function buildTools() {
  const tools = state.labels
    ? [["brush", "Brush", "B"], ["rect", "Rectangle", "R"]]
    : [["pen", "Pen", "P"], ["eraser", "Eraser", "E"]];
  state.tool = tools[0][0];
  const group = $("tools");
  for (const [name, label, key] of tools) {
    const button = radio("tool", label, `${label} (${key})`);
    button.dataset.tool = name;
    button.dataset.key = key.toLowerCase();
    button.addEventListener("click", () => selectTool(name));
    group.append(button);
  }
  const size = $("size");
  size.max = Math.max(16, Math.round(state.info.crop_size / 3));
  size.value = state.labels ? Math.max(2, Math.round(state.info.crop_size / 16)) : Math.max(1, Math.round(state.info.crop_size / 128));
  $("size-value").textContent = size.value;
  selectTool(state.tool);
}

function radio(className, text, title) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  button.setAttribute("role", "radio");
  button.title = title;
  button.textContent = text;
  return button;
}

function selectTool(name) {
  state.tool = name;
  for (const button of document.querySelectorAll(".tool")) {
    button.setAttribute("aria-checked", String(button.dataset.tool === name));
  }
}

function buildPalette() {
  const group = $("palette");
  if (!state.labels) {
    state.color = "#000000";
    state.background = "#ffffff";
    group.hidden = true;
    return;
  }
  const classes = state.info.palette;
  state.background = hex(classes[0].color);
  classes.forEach((entry, index) => {
    const button = radio("swatch", "", `${entry.name}${index < 9 ? ` (${index + 1})` : ""}`);
    const chip = document.createElement("i");
    chip.style.background = hex(entry.color);
    const name = document.createElement("span");
    name.textContent = entry.name;
    button.append(chip, name);
    if (index < 9) {
      const key = document.createElement("kbd");
      key.textContent = String(index + 1);
      button.append(key);
    }
    button.dataset.color = hex(entry.color);
    button.addEventListener("click", () => selectColor(button.dataset.color));
    group.append(button);
  });
  selectColor(hex(classes[Math.min(1, classes.length - 1)].color));
}

function selectColor(color) {
  state.color = color;
  for (const button of document.querySelectorAll(".swatch")) {
    button.setAttribute("aria-checked", String(button.dataset.color === color));
  }
}

function hex(rgb) {
  return "#" + rgb.map((v) => v.toString(16).padStart(2, "0")).join("");
}

function buildExamples() {
  const count = state.info.examples;
  if (!count) return;
  $("examples-group").hidden = false;
  for (let index = 0; index < count; index++) {
    const button = document.createElement("button");
    button.type = "button";
    button.title = `Start from example ${index + 1} of the run's dataset`;
    const image = document.createElement("img");
    image.src = `/api/examples/${index}`;
    image.alt = `example ${index + 1}`;
    button.append(image);
    button.addEventListener("click", () => loadExample(index));
    $("examples").append(button);
  }
}

// --- the canvas -------------------------------------------------------------------------------------------------

function resizeCanvas(width, height) {
  canvas.width = overlay.width = width;
  canvas.height = overlay.height = height;
  fitSurface();
}

function fitSurface() {
  const frame = $("input-frame");
  const room = Math.min(frame.clientWidth, frame.clientHeight) - 2;
  const scale = room / Math.max(canvas.width, canvas.height);
  $("surface").style.width = `${Math.floor(canvas.width * scale)}px`;
  $("surface").style.height = `${Math.floor(canvas.height * scale)}px`;
}

function clearCanvas() {
  ink.fillStyle = state.background;
  ink.fillRect(0, 0, canvas.width, canvas.height);
}

function remember() {
  state.history.push(ink.getImageData(0, 0, canvas.width, canvas.height));
  if (state.history.length > HISTORY) state.history.shift();
}

function undo() {
  const last = state.history.pop();
  if (!last) return setStatus("Nothing to undo.");
  if (last.width !== canvas.width || last.height !== canvas.height) resizeCanvas(last.width, last.height);
  ink.putImageData(last, 0, 0);
  changed(true);
}

function point(event) {
  const box = overlay.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) * canvas.width) / box.width,
    y: ((event.clientY - box.top) * canvas.height) / box.height,
  };
}

function radius() {
  return Number($("size").value) / 2;
}

// A disc of whole pixels: label maps must hold only palette colours, so nothing is anti-aliased.
function stamp(x, y, r, color) {
  ink.fillStyle = color;
  const reach = Math.max(0.5, r);
  for (let dy = -Math.ceil(reach); dy <= Math.ceil(reach); dy++) {
    const half = Math.sqrt(Math.max(0, reach * reach - dy * dy));
    const left = Math.round(x - half);
    const right = Math.round(x + half);
    if (right > left) ink.fillRect(left, Math.round(y + dy), right - left, 1);
  }
}

function brushLine(from, to) {
  const r = radius();
  const step = Math.max(0.5, r / 2);
  const steps = Math.max(1, Math.ceil(Math.hypot(to.x - from.x, to.y - from.y) / step));
  for (let i = 1; i <= steps; i++) {
    stamp(from.x + ((to.x - from.x) * i) / steps, from.y + ((to.y - from.y) * i) / steps, r, state.color);
  }
}

function penLine(from, to) {
  ink.save();
  ink.lineCap = ink.lineJoin = "round";
  ink.lineWidth = state.tool === "eraser" ? Math.max(4, radius() * 6) : Math.max(1, radius() * 2);
  ink.strokeStyle = state.tool === "eraser" ? state.background : state.color;
  ink.beginPath();
  ink.moveTo(from.x, from.y);
  ink.lineTo(to.x + 0.01, to.y);
  ink.stroke();
  ink.restore();
}

function rectangle(from, to) {
  const left = Math.round(Math.min(from.x, to.x));
  const top = Math.round(Math.min(from.y, to.y));
  return [left, top, Math.round(Math.max(from.x, to.x)) - left, Math.round(Math.max(from.y, to.y)) - top];
}

function showRectangle(from, to) {
  preview.clearRect(0, 0, overlay.width, overlay.height);
  const [x, y, w, h] = rectangle(from, to);
  preview.fillStyle = state.color;
  preview.globalAlpha = 0.6;
  preview.fillRect(x, y, w, h);
  preview.globalAlpha = 1;
  preview.strokeStyle = "#ffffff";
  preview.lineWidth = Math.max(1, canvas.width / 256);
  preview.strokeRect(x, y, w, h);
}

function drawBegin(event) {
  if (event.button !== 0) return;
  overlay.setPointerCapture(event.pointerId);
  remember();
  const at = point(event);
  state.stroke = { from: at, last: at };
  if (state.tool === "brush") brushLine(at, at);
  if (state.tool === "pen" || state.tool === "eraser") penLine(at, at);
  if (state.tool !== "rect") changed(false);
}

function drawMove(event) {
  if (!state.stroke) return;
  const at = point(event);
  if (state.tool === "rect") {
    showRectangle(state.stroke.from, at);
    return;
  }
  if (state.tool === "brush") brushLine(state.stroke.last, at);
  else penLine(state.stroke.last, at);
  state.stroke.last = at;
  changed(false);
}

function drawEnd(event) {
  if (!state.stroke) return;
  if (state.tool === "rect") {
    preview.clearRect(0, 0, overlay.width, overlay.height);
    const [x, y, w, h] = rectangle(state.stroke.from, point(event));
    ink.fillStyle = state.color;
    ink.fillRect(x, y, Math.max(1, w), Math.max(1, h));
  }
  state.stroke = null;
  changed(true);
}

// The drawing changed: what is sent is now the canvas; live mode translates after a pause (or every so often).
function changed(finished) {
  state.upload = null;
  $("input-note").textContent = `drawing · ${canvas.width}×${canvas.height}`;
  if (finished) {
    scheduleLive(LIVE_DELAY_MS);
  } else {
    const now = performance.now();
    if (!state.timer) state.firstChange = now;
    scheduleLive(Math.min(LIVE_DELAY_MS, Math.max(0, LIVE_MAX_WAIT_MS - (now - state.firstChange))));
  }
}

function scheduleLive(delay) {
  if (!$("live").checked) return;
  clearTimeout(state.timer);
  state.timer = setTimeout(() => {
    state.timer = null;
    translate();
  }, delay);
}

// --- images in --------------------------------------------------------------------------------------------------

async function loadExample(index) {
  const response = await fetch(`/api/examples/${index}`);
  const bitmap = await createImageBitmap(await response.blob());
  remember();
  resizeCanvas(bitmap.width, bitmap.height);
  ink.drawImage(bitmap, 0, 0);
  state.upload = null;
  $("input-note").textContent = `example ${index + 1} · draw over it`;
  translate();
}

async function loadFile(file) {
  if (!file) return;
  if (!["image/png", "image/jpeg", "image/webp"].includes(file.type)) {
    return setStatus(`${file.name}: not a PNG, JPEG or WebP image.`, true);
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch (error) {
    return setStatus(`${file.name}: the browser cannot decode it.`, true);
  }
  remember();
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  resizeCanvas(Math.round(bitmap.width * scale), Math.round(bitmap.height * scale));
  ink.imageSmoothingEnabled = !state.labels;
  ink.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  state.upload = file;
  $("input-note").textContent = `${file.name} · ${bitmap.width}×${bitmap.height}`;
  translate();
}

// --- translation ------------------------------------------------------------------------------------------------

function canvasBlob() {
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

async function translate() {
  clearTimeout(state.timer);
  state.timer = null;
  if (state.inflight) {
    state.again = true; // the newest drawing goes next; those in between are skipped
    return;
  }
  state.inflight = true;
  state.again = false;
  outputFrame.dataset.state = "busy";
  const body = state.upload || (await canvasBlob());
  const params = new URLSearchParams({ mode: $("mode").value });
  if ($("seed").value !== "") params.set("seed", $("seed").value);
  const began = performance.now();
  try {
    const response = await fetch(`/api/translate?${params}`, {
      method: "POST",
      body,
      headers: { "Content-Type": body.type || "image/png" },
    });
    if (response.ok) {
      show(await response.blob(), performance.now() - began);
    } else {
      await refused(response);
    }
  } catch (error) {
    setStatus("The server does not answer: is `pix2pix serve` still running?", true);
  } finally {
    state.inflight = false;
    outputFrame.dataset.state = state.outputUrl ? "done" : "empty";
    if (state.again) translate();
  }
}

function show(blob, millis) {
  if (state.outputUrl) URL.revokeObjectURL(state.outputUrl);
  state.outputUrl = URL.createObjectURL(blob);
  output.src = state.outputUrl;
  const download = $("download");
  download.href = state.outputUrl;
  download.download = `pix2pix-${$("mode").value}${$("seed").value !== "" ? `-seed${$("seed").value}` : ""}.png`;
  download.hidden = false;
  state.translations += 1;
  outputFrame.dataset.translations = String(state.translations);
  setStatus(`Translated in ${Math.round(millis)} ms (${$("mode").value} mode${$("seed").value !== "" ? `, seed ${$("seed").value}` : ""}).`);
}

async function refused(response) {
  let detail = response.statusText;
  try {
    detail = (await response.json()).detail;
  } catch (error) {
    /* not JSON: keep the status text */
  }
  const text = typeof detail === "string" ? detail : JSON.stringify(detail);
  if (response.status === 503) {
    const wait = Number(response.headers.get("Retry-After") || 1);
    setStatus(`The server is busy; trying again in ${wait} s.`, true);
    setTimeout(translate, wait * 1000);
    return;
  }
  setStatus(`${response.status}: ${text}`, true);
}

function setStatus(text, error = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", error);
}

// --- events -----------------------------------------------------------------------------------------------------

function bindEvents() {
  overlay.addEventListener("pointerdown", drawBegin);
  overlay.addEventListener("pointermove", drawMove);
  overlay.addEventListener("pointerup", drawEnd);
  overlay.addEventListener("pointercancel", drawEnd);
  $("translate").addEventListener("click", translate);
  $("undo").addEventListener("click", undo);
  $("clear").addEventListener("click", () => {
    remember();
    clearCanvas();
    changed(true);
  });
  $("size").addEventListener("input", () => ($("size-value").textContent = $("size").value));
  $("file").addEventListener("change", (event) => loadFile(event.target.files[0]));
  $("mode").addEventListener("change", translate);
  $("seed").addEventListener("change", translate);
  $("dice").addEventListener("click", () => {
    $("seed").value = String(Math.floor(Math.random() * 1e6));
    translate();
  });
  $("live").addEventListener("change", () => $("live").checked && translate());
  const frame = $("input-frame");
  frame.addEventListener("dragover", (event) => {
    event.preventDefault();
    frame.classList.add("dragging");
  });
  frame.addEventListener("dragleave", () => frame.classList.remove("dragging"));
  frame.addEventListener("drop", (event) => {
    event.preventDefault();
    frame.classList.remove("dragging");
    loadFile(event.dataTransfer.files[0]);
  });
  window.addEventListener("resize", fitSurface);
  document.addEventListener("keydown", shortcut);
}

function shortcut(event) {
  if (event.target.matches("input, select, textarea")) return;
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
    event.preventDefault();
    return undo();
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "Enter") return translate();
  const tool = document.querySelector(`.tool[data-key="${event.key.toLowerCase()}"]`);
  if (tool) return selectTool(tool.dataset.tool);
  const swatch = document.querySelectorAll(".swatch")[Number(event.key) - 1];
  if (swatch) return selectColor(swatch.dataset.color);
  const size = $("size");
  if (event.key === "[" || event.key === "]") {
    size.value = String(Number(size.value) + (event.key === "]" ? 1 : -1));
    $("size-value").textContent = size.value;
  }
}

start();
