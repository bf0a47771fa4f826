// The static page: onnxruntime-web reads a digit drawn on the canvas, or a photo of one, in the browser.
// From file:// Chromium refuses module scripts and fetch, so the runtime's WebAssembly and its module glue
// arrive as base64 in classic scripts (ort-wasm.js, ort-glue.js) and become blob: URLs here, which need
// no fetch; the model arrives the same way (model.js). One thread: threads need cross-origin isolation.

"use strict";

const SIZE = 28;         // what the model sees
const BOX = 20;          // MNIST's digits fit a 20x20 box inside it, centred by their centre of mass
const NOISE = 0.2;       // ink fainter than this share of the strongest is paper, as `predict` frames it
const BRUSH = 20;        // on the 280 px canvas: ~2 px at 28x28, MNIST's stroke width
const $ = (id) => document.getElementById(id);
const bytes = (base64) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
const model = window.MNISTLAB_MODEL;

async function startSession() {
  const blobUrl = (base64, type) => URL.createObjectURL(new Blob([bytes(base64)], { type }));
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmPaths = { mjs: blobUrl(window.ORT_GLUE, "text/javascript"), wasm: blobUrl(window.ORT_WASM, "application/wasm") };
  return ort.InferenceSession.create(bytes(model.onnx));
}

const session = startSession();

/** The calibrated probabilities of one framed digit (784 numbers in [0, 1], light ink on black). One at a
 * time: the WebAssembly session runs one inference at once, and two at once never finish. */
let queue = Promise.resolve();
function classify(pixels) {
  const run = queue.then(() => classifyNow(pixels));
  queue = run.catch(() => {});
  return run;
}

async function classifyNow(pixels) {
  const input = new ort.Tensor("float32", Float32Array.from(pixels), [1, 1, SIZE, SIZE]);
  const output = await (await session).run({ images: input });
  const logits = Array.from(Object.values(output)[0].data);  // already divided by the run's temperature
  const peak = Math.max(...logits);
  const e = logits.map((v) => Math.exp(v - peak));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / total);
}

/** An image (ImageData) of one digit -> 784 numbers, framed as `predict` frames a clean image: ink measured
 * against the border's paper (dark on light or light on dark), faint ink dropped, cropped to the ink, scaled
 * into 20x20 keeping its shape, and placed in 28x28 with its centre of mass at the centre. */
function frame(image) {
  const { width, height, data } = image;
  const grey = new Float32Array(width * height);
  for (let i = 0; i < grey.length; i++) {
    const alpha = data[4 * i + 3] / 255;  // transparency is white paper
    const lum = (0.299 * data[4 * i] + 0.587 * data[4 * i + 1] + 0.114 * data[4 * i + 2]) / 255;
    grey[i] = alpha * lum + (1 - alpha);
  }
  const border = [];
  for (let x = 0; x < width; x++) border.push(grey[x], grey[(height - 1) * width + x]);
  for (let y = 0; y < height; y++) border.push(grey[y * width], grey[y * width + width - 1]);
  border.sort((a, b) => a - b);
  const paper = border[border.length >> 1];
  const darkInk = paper > (Math.min(...grey) + Math.max(...grey)) / 2;
  const ink = grey.map((g) => Math.max(0, darkInk ? paper - g : g - paper));
  const strongest = Math.max(...ink);
  if (strongest === 0) return new Float32Array(SIZE * SIZE);
  let [x0, y0, x1, y1] = [width, height, -1, -1];
  ink.forEach((v, i) => {
    const value = v / strongest;
    ink[i] = value < NOISE ? 0 : value;
    if (ink[i] > 0) {
      const x = i % width, y = (i / width) | 0;
      x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
    }
  });
  const w = x1 - x0 + 1, h = y1 - y0 + 1;
  const crop = document.createElement("canvas");
  crop.width = w; crop.height = h;
  const cropped = new ImageData(w, h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const v = Math.round(255 * ink[(y0 + y) * width + x0 + x]);
    cropped.data.set([v, v, v, 255], 4 * (y * w + x));
  }
  crop.getContext("2d").putImageData(cropped, 0, 0);
  const scale = BOX / Math.max(w, h);
  const sw = Math.max(1, Math.round(w * scale)), sh = Math.max(1, Math.round(h * scale));
  const small = document.createElement("canvas");
  small.width = sw; small.height = sh;
  const ctx = small.getContext("2d");
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(crop, 0, 0, sw, sh);
  const scaled = ctx.getImageData(0, 0, sw, sh).data;
  let mass = 0, mx = 0, my = 0;
  for (let y = 0; y < sh; y++) for (let x = 0; x < sw; x++) {
    const v = scaled[4 * (y * sw + x)] / 255;
    mass += v; mx += v * x; my += v * y;
  }
  const left = Math.round(SIZE / 2 - 0.5 - (mass ? mx / mass : sw / 2));
  const top = Math.round(SIZE / 2 - 0.5 - (mass ? my / mass : sh / 2));
  const out = new Float32Array(SIZE * SIZE);
  for (let y = 0; y < sh; y++) for (let x = 0; x < sw; x++) {
    const tx = x + left, ty = y + top;
    if (tx >= 0 && ty >= 0 && tx < SIZE && ty < SIZE) out[ty * SIZE + tx] = scaled[4 * (y * sw + x)] / 255;
  }
  return out;
}

function show(pixels, probabilities) {
  const best = probabilities.indexOf(Math.max(...probabilities));
  $("prediction").textContent = model.classes[best];
  [...$("probabilities").children].forEach((li, i) => {
    li.querySelector(".fill").style.width = `${(100 * probabilities[i]).toFixed(1)}%`;
    li.querySelector(".pct").textContent = `${(100 * probabilities[i]).toFixed(1)}%`;
    li.classList.toggle("top", i === best);
  });
  const seen = new ImageData(SIZE, SIZE);
  pixels.forEach((v, i) => seen.data.set([255 * v, 255 * v, 255 * v, 255], 4 * i));
  $("seen").getContext("2d").putImageData(seen, 0, 0);
}

async function read(image) {
  const pixels = frame(image);
  if (!pixels.some((v) => v > 0)) {
    $("prediction").textContent = "–";
    $("status").textContent = "No ink found: draw a digit, or open a photo of one.";
    return;
  }
  show(pixels, await classify(pixels));
  $("status").textContent = "Read in this page.";
}

// Drawing
const canvas = $("canvas");
const ctx = canvas.getContext("2d");
let last = null;

function clear() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  $("prediction").textContent = "–";
}

function point(event) {
  const box = canvas.getBoundingClientRect();
  return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
}

canvas.addEventListener("pointerdown", (event) => {
  canvas.setPointerCapture(event.pointerId);
  last = point(event);
});
canvas.addEventListener("pointermove", (event) => {
  if (!last) return;
  const p = point(event);
  Object.assign(ctx, { strokeStyle: "#fff", lineWidth: BRUSH, lineCap: "round", lineJoin: "round" });
  ctx.beginPath();
  ctx.moveTo(...last);
  ctx.lineTo(...p);
  ctx.stroke();
  last = p;
});
for (const type of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(type, () => {
    if (!last) return;
    last = null;
    read(ctx.getImageData(0, 0, canvas.width, canvas.height));
  });
}
$("clear").addEventListener("click", clear);

$("upload").addEventListener("change", async () => {
  const file = $("upload").files[0];
  if (!file) return;
  try {
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    const scale = Math.min(1, 800 / Math.max(bitmap.width, bitmap.height));  // enough for one clean digit
    const photo = document.createElement("canvas");
    photo.width = Math.max(1, Math.round(bitmap.width * scale));
    photo.height = Math.max(1, Math.round(bitmap.height * scale));
    photo.getContext("2d").drawImage(bitmap, 0, 0, photo.width, photo.height);
    await read(photo.getContext("2d").getImageData(0, 0, photo.width, photo.height));
  } catch (e) {
    $("status").textContent = `Could not read ${file.name}: ${e.message || e}`;
  }
});

// The bars, one per class; then say when the model is ready.
$("probabilities").replaceChildren(...model.classes.map((name) => {
  const li = document.createElement("li");
  li.innerHTML = '<span class="name"></span><span class="bar"><span class="fill"></span></span><span class="pct">–</span>';
  li.querySelector(".name").textContent = name;
  return li;
}));
$("about").textContent = `Model: ${model.source}, run by onnxruntime-web in this page.`;
clear();
session.then(() => { $("status").textContent = "Ready: draw a digit."; },
             (e) => { $("status").textContent = `The model could not start: ${e.message || e}`; });
window.mnistlab = { classify, frame, ready: session.then(() => true) };
