// The mnistlab page: the drawing goes to /api/predict/pixels as it grows, an upload to /api/predict; the GAN
// panels use /api/generate and /api/interpolate; /api/models says what is loaded. Plain DOM, no libraries, nothing from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const SIZE = 28;               // what the models see
const BRUSH = 20;              // on the 280 px canvas: ~2 px at 28x28, MNIST's stroke width
const THROTTLE_MS = 150;       // at most one prediction this often while a stroke goes on
const MAX_UPLOAD = 1 << 20;    // the server refuses bodies over 1 MB
const WALK_STEPS = 16;

const canvas = $("canvas");
const ctx = canvas.getContext("2d");
let classes = [...Array(10).keys()].map(String);

// ---------------------------------------------------------------------------------------------
// Talking to the server

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function hideError() {
  $("error").hidden = true;
}

/** The server's explanation as one sentence: `detail` is a string, or FastAPI's list of validation errors. */
function explain(detail) {
  if (typeof detail === "string") return detail;
  if (!Array.isArray(detail) || detail.length === 0) return JSON.stringify(detail);
  const where = (loc) => loc.filter((part) => part !== "body" && part !== "query").join(".");
  const first = `${where(detail[0].loc)}: ${detail[0].msg}`;
  return detail.length > 1 ? `${first} (and ${detail.length - 1} more)` : first;
}

/** fetch that throws the server's own explanation ({"detail": ...}) on a non-2xx answer. */
async function api(url, options) {
  const response = await fetch(url, options);
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = explain((await response.json()).detail);
    } catch (_) { /* not JSON: keep the status text */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response;
}

/** Paint a 28x28 array (values 0..1, or 0..255 when `max` is 255) onto a 28x28 canvas, grey levels. */
function paint(target, image, max = 1) {
  const pixels = new ImageData(SIZE, SIZE);
  image.flat().forEach((v, i) => {
    const grey = Math.round((v / max) * 255);
    pixels.data.set([grey, grey, grey, 255], i * 4);
  });
  target.getContext("2d").putImageData(pixels, 0, 0);
}

// ---------------------------------------------------------------------------------------------
// Reading: the prediction, the ten bars, and what the model saw

function buildBars() {
  $("probabilities").replaceChildren(...classes.map((name) => {
    const li = document.createElement("li");
    li.innerHTML = '<span class="name"></span><span class="bar"><span class="fill"></span></span><span class="pct">–</span>';
    li.querySelector(".name").textContent = name;
    return li;
  }));
}

function show(result) {
  $("prediction").textContent = result.label;
  [...$("probabilities").children].forEach((li, i) => {
    const p = result.probabilities[i];
    li.querySelector(".fill").style.width = `${(p * 100).toFixed(1)}%`;
    li.querySelector(".pct").textContent = `${(p * 100).toFixed(1)}%`;
    li.classList.toggle("top", i === result.digit);
  });
  paint($("seen"), result.image);
}

function resetReading() {
  $("prediction").textContent = "–";
  buildBars();
  $("seen").getContext("2d").clearRect(0, 0, SIZE, SIZE);
}

// ---------------------------------------------------------------------------------------------
// Drawing: thick round white strokes on black, as MNIST's digits are

let last = null;       // the previous point of the stroke in progress, or null between strokes
let hasInk = false;
let drawing = 0;       // bumped by Clear and uploads, so a late answer about an old drawing is dropped

function clearCanvas() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  hasInk = false;
  drawing++;
}

function point(event) {
  const box = canvas.getBoundingClientRect();  // the canvas may be shown smaller than its 280 px
  return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
}

function dot([x, y]) {
  ctx.fillStyle = "#fff";
  ctx.beginPath();
  ctx.arc(x, y, BRUSH / 2, 0, 2 * Math.PI);
  ctx.fill();
}

function line(from, to) {
  Object.assign(ctx, { strokeStyle: "#fff", lineWidth: BRUSH, lineCap: "round", lineJoin: "round" });
  ctx.beginPath();
  ctx.moveTo(...from);
  ctx.lineTo(...to);
  ctx.stroke();
}

canvas.addEventListener("pointerdown", (event) => {
  canvas.setPointerCapture(event.pointerId);  // keep the stroke when the pointer leaves the canvas
  hideError();
  last = point(event);
  dot(last);
  hasInk = true;
  schedule(false);
});

canvas.addEventListener("pointermove", (event) => {
  if (!last) return;
  // Coalesced events are the points the browser merged into this one: smooth curves on fast strokes.
  for (const e of event.getCoalescedEvents ? event.getCoalescedEvents() : [event]) {
    const p = point(e);
    line(last, p);
    last = p;
  }
  schedule(false);
});

for (const type of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(type, () => {
    if (!last) return;
    last = null;
    schedule(true);
  });
}

$("clear").addEventListener("click", () => {
  clearCanvas();
  resetReading();
  $("source").textContent = "Draw large, in the middle, as on paper. Or upload a photo of one digit.";
});

// Throttling: one request at a time; the newest drawing is sent when the previous answer arrives, at most
// every THROTTLE_MS while drawing, and at once when the stroke ends.
let inFlight = false;
let pending = false;
let lastSent = 0;
let timer = null;

function schedule(now) {
  pending = true;
  if (inFlight) return;
  const wait = now ? 0 : lastSent + THROTTLE_MS - performance.now();
  if (wait <= 0) send();
  else if (!timer) timer = setTimeout(send, wait);
}

/** The canvas downsampled to 28x28 (the browser averages the area): the red channel, 0..255. */
function canvasPixels() {
  const small = document.createElement("canvas");
  small.width = small.height = SIZE;
  const sctx = small.getContext("2d");
  sctx.imageSmoothingQuality = "high";
  sctx.drawImage(canvas, 0, 0, SIZE, SIZE);
  const data = sctx.getImageData(0, 0, SIZE, SIZE).data;
  return Array.from({ length: SIZE }, (_, y) => Array.from({ length: SIZE }, (_, x) => data[(y * SIZE + x) * 4]));
}

async function send() {
  clearTimeout(timer);
  timer = null;
  if (!pending || inFlight || !hasInk) return;
  pending = false;
  inFlight = true;
  lastSent = performance.now();
  const which = drawing;
  try {
    const response = await api("/api/predict/pixels", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ pixels: canvasPixels() }),
    });
    const result = await response.json();
    if (which === drawing) show(result);
  } catch (e) {
    showError(`Could not read the drawing: ${e.message}`);
  } finally {
    inFlight = false;
    if (pending) schedule(last === null);
  }
}

$("upload").addEventListener("change", async () => {
  const input = $("upload");
  const file = input.files[0];
  input.value = "";  // choosing the same file again should read it again
  if (!file) return;
  hideError();
  if (file.size > MAX_UPLOAD) {
    showError(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MB; the limit is 1 MB. Crop or shrink it: `
              + "the model sees 28x28 pixels anyway.");
    return;
  }
  clearCanvas();
  const which = drawing;
  const form = new FormData();
  form.append("file", file);
  try {
    const result = await (await api("/api/predict", { method: "POST", body: form })).json();
    if (which !== drawing) return;
    show(result);
    $("source").textContent = `Read from ${file.name}.`;
  } catch (e) {
    resetReading();
    showError(`Could not read ${file.name}: ${e.message}`);
  }
});

// ---------------------------------------------------------------------------------------------
// The generator: a grid of new digits, and a walk between two seeds

let gridUrl = null;

async function generate() {
  hideError();
  try {
    const query = new URLSearchParams({ n: 16, seed: $("seed").value });
    if ($("digit").value !== "") query.set("digit", $("digit").value);
    const response = await api(`/api/generate?${query}`);
    if (gridUrl) URL.revokeObjectURL(gridUrl);
    gridUrl = URL.createObjectURL(await response.blob());
    $("grid").src = gridUrl;
    const which = $("digit").value === "" ? "digits" : `${$("digit").value}s`;
    $("grid").alt = `16 ${which} drawn by the generator from seed ${$("seed").value}`;
    $("grid").hidden = false;
  } catch (e) {
    showError(`Could not generate: ${e.message}`);
  }
}

let frames = [];

async function walk() {
  hideError();
  const query = new URLSearchParams({ seed_a: $("seed-a").value, seed_b: $("seed-b").value, steps: WALK_STEPS,
                                      format: "json" });
  try {
    frames = (await (await api(`/api/interpolate?${query}`)).json()).images;
    showFrame();
  } catch (e) {
    showError(`Could not walk: ${e.message}`);
  }
}

function showFrame() {
  const i = Number($("walk").value);
  if (frames[i]) paint($("walk-frame"), frames[i], 255);
  $("walk").setAttribute("aria-valuetext", `step ${i + 1} of ${WALK_STEPS}`);
}

$("digit").addEventListener("change", generate);
$("generate-form").addEventListener("submit", (event) => {
  event.preventDefault();
  generate();
});
$("walk-form").addEventListener("submit", (event) => {
  event.preventDefault();
  walk();
});
$("walk").addEventListener("input", showFrame);

// ---------------------------------------------------------------------------------------------
// What is loaded

function describe(dl, role, info, flag) {
  const dt = document.createElement("dt");
  dt.textContent = role;
  const dd = document.createElement("dd");
  if (!info) {
    dd.textContent = `not loaded: restart the server with ${flag} RUN_DIR`;
  } else {
    const metric = document.createElement("span");
    metric.className = "metric";
    metric.textContent = info.kind === "cnn"
      ? (info.test_acc == null ? "test accuracy not measured" : `test accuracy ${(info.test_acc * 100).toFixed(2)}%`)
      : (info.fcd == null ? "FCD not measured" : `FCD ${info.fcd.toFixed(2)} (lower is better)`);
    dd.append(metric, ` · ${info.kind}/${info.preset} on ${info.dataset}, ${info.epochs} epochs · ${info.path}`);
  }
  dl.append(dt, dd);
}

function disable(sectionChild, why) {
  const card = sectionChild.closest(".card");
  card.querySelectorAll("button, input").forEach((el) => { el.disabled = true; });
  const note = document.createElement("p");
  note.className = "hint";
  note.textContent = why;
  card.append(note);
}

async function start() {
  clearCanvas();
  buildBars();
  try {
    const models = await (await api("/api/models")).json();
    const dl = $("models");
    dl.replaceChildren();
    describe(dl, "Classifier", models.cnn, "--cnn");
    describe(dl, "Generator", models.gan, "--gan");
    if (models.cnn) {
      classes = models.cnn.classes;
      buildBars();
    } else {
      disable($("clear"), "No classifier is loaded.");
    }
    if (models.gan) {
      if (!models.gan.conditional) {  // an unconditional GAN cannot be asked for a digit
        $("digit").disabled = true;
        $("digit").title = "This generator was trained unconditional: it draws any digit.";
      }
      generate();
      walk();
    } else {
      disable($("generate"), "No generator is loaded.");
      disable($("walk"), "No generator is loaded.");
    }
  } catch (e) {
    showError(`The server did not answer: ${e.message}`);
  }
}

start();
