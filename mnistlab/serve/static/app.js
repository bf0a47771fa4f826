// The mnistlab page: the drawing goes to /api/read as it grows, and so does a photo, shrunk first (reading.js
// shows what was read); the GAN panels use /api/generate and /api/interpolate; /api/models says what is loaded.
// Plain DOM, no libraries, nothing from elsewhere.

import { cameraRunning, freezeCamera, startCamera, stopCamera } from "/camera.js";
import { $, buildBars, paint, resetReading, showNoDigit, showPhoto, showReading, shownDigit, shrinkPhoto } from "/reading.js";
import { startTeaching } from "/teach.js";

const BRUSH = 20;              // on the 280 px tall canvas: ~2 px at 28x28, MNIST's stroke width
const THROTTLE_MS = 150;       // at most one reading this often while a stroke goes on
const MAX_UPLOAD = 10 << 20;   // the server refuses uploads over 10 MB
const WALK_STEPS = 16;
const DRAW_HINT = "Draw large, as on paper: one digit, or several side by side. "
                  + "Or upload a photo of a number written on paper.";

const canvas = $("canvas");
const ctx = canvas.getContext("2d");

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

/** A non-2xx answer: its status, and the server's explanation as one sentence. */
class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    Object.assign(this, { status, detail });
  }
}

/** fetch that throws an ApiError with the server's own explanation ({"detail": ...}) on a non-2xx answer. */
async function api(url, options) {
  const response = await fetch(url, options);
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = explain((await response.json()).detail);
    } catch (_) { /* not JSON: keep the status text */ }
    throw new ApiError(response.status, detail);
  }
  return response;
}

/** /api/read's answer for an image (a Blob), or null when it holds no digit (the server's 422 says so). */
async function read(image, name) {
  const form = new FormData();
  form.append("file", image, name);
  try {
    return await (await api("/api/read", { method: "POST", body: form })).json();
  } catch (e) {
    if (e.status === 422 && e.detail.startsWith("no digit found")) return null;
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Drawing: thick round white strokes on black, as MNIST's digits are

let last = null;       // the previous point of the stroke in progress, or null between strokes
let hasInk = false;
let drawing = 0;       // bumped by Clear and uploads, so a late answer about an old drawing is dropped

function clearCanvas() {
  if (cameraRunning()) stopCamera();  // drawing, clearing or uploading ends the live reading
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
  if (cameraRunning()) {
    clearCanvas();
    showPhoto(null);
  }
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

// The camera: read live, a few times a second, until Freeze keeps a frame (camera.js)
$("camera").addEventListener("click", () => {
  hideError();
  clearCanvas();
  resetReading();
  $("source").textContent = "Hold a number written on paper in front of the camera.";
  startCamera({
    read,
    show: (result) => showReading(result),
    none: () => showNoDigit("No digit in view: hold a number written on paper in front of the camera."),
    fail: (message) => {
      $("camera-status").textContent = message;
      $("source").textContent = DRAW_HINT;
    },
  });
});
$("freeze").addEventListener("click", () => freezeCamera(showReading));

$("clear").addEventListener("click", () => {
  clearCanvas();
  resetReading();
  showPhoto(null);
  $("source").textContent = DRAW_HINT;
});

// Throttling: one request at a time; the newest drawing is sent when the previous answer arrives, at most
// every THROTTLE_MS while drawing, and at once when the stroke ends.
let inFlight = false;
let pending = false;
let lastSent = 0;
let timer = null;

/** Whether a reading is on its way: screen readers wait for it, and so can a test. */
function setBusy(busy) {
  $("prediction").setAttribute("aria-busy", String(busy));
}

function schedule(now) {
  pending = true;
  setBusy(true);
  if (inFlight) return;
  const wait = now ? 0 : lastSent + THROTTLE_MS - performance.now();
  if (wait <= 0) send();
  else if (!timer) timer = setTimeout(send, wait);
}

async function send() {
  clearTimeout(timer);
  timer = null;
  if (!pending || inFlight) return;
  pending = false;
  if (!hasInk) {  // cleared meanwhile
    setBusy(false);
    return;
  }
  inFlight = true;
  lastSent = performance.now();
  const which = drawing;
  try {
    const drawn = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    const result = await read(drawn, "drawing.png");
    if (which !== drawing) return;
    if (result) showReading(result);
    else showNoDigit("No digit in the drawing yet: draw it larger.");
  } catch (e) {
    showError(`Could not read the drawing: ${e.message}`);
  } finally {
    inFlight = false;
    if (pending) schedule(last === null);
    else setBusy(false);
  }
}

$("upload").addEventListener("change", async () => {
  const input = $("upload");
  const file = input.files[0];
  input.value = "";  // choosing the same file again should read it again
  if (!file) return;
  hideError();
  clearCanvas();
  resetReading();
  const which = drawing;
  let photo = file;  // a format this browser cannot draw goes as it is: the server says what it is
  try {
    photo = await shrinkPhoto(file);
  } catch (_) { /* sent as it is */ }
  if (photo.size > MAX_UPLOAD) {
    showPhoto(null);
    showError(`${file.name} is ${(photo.size / 2 ** 20).toFixed(1)} MB, and this browser cannot shrink it; `
              + "the limit is 10 MB. Save it as a JPEG first.");
    return;
  }
  showPhoto(photo, file.name);
  $("source").textContent = `Reading ${file.name}…`;
  try {
    const result = await read(photo, file.name);
    if (which !== drawing) return;
    if (result) showReading(result);
    else showNoDigit(`No digit found in ${file.name}. Photograph digits written on paper, `
                     + "dark on light or light on dark.");
    $("source").textContent = `Read from ${file.name}.`;
  } catch (e) {
    if (which !== drawing) return;
    showPhoto(null);
    $("source").textContent = DRAW_HINT;
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

/** /api/models, shown in "Loaded models"; returns it. */
async function showModels() {
  const models = await (await api("/api/models")).json();
  const dl = $("models");
  dl.replaceChildren();
  describe(dl, "Classifier", models.cnn, "--cnn");
  describe(dl, "Generator", models.gan, "--gan");
  return models;
}

async function start() {
  clearCanvas();
  resetReading();
  try {
    const models = await showModels();
    if (models.cnn) {
      startTeaching({ digit: shownDigit, clear: () => $("clear").click(), done: showModels, api });
      buildBars(models.cnn.classes);
    } else {
      disable($("clear"), "No classifier is loaded.");
      disable($("teach-keep"), "No classifier is loaded.");
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
