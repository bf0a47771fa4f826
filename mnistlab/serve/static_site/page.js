// The static page: onnxruntime-web reads a digit drawn on the canvas, or a photo of one, and draws new digits
// with a GAN's generator, in the browser. site.js says which models the site holds.
// From file:// Chromium refuses module scripts and fetch, so the runtime's WebAssembly and its module glue
// arrive as base64 in classic scripts (ort-wasm.js, ort-glue.js) and become blob: URLs here, which need
// no fetch; each model arrives the same way, in a script added when it is first used. One thread: threads
// need cross-origin isolation.

"use strict";

const SIZE = 28;         // what the models see and draw
const BOX = 20;          // MNIST's digits fit a 20x20 box inside it, centred by their centre of mass
const NOISE = 0.2;       // ink fainter than this share of the strongest is paper, as `predict` frames it
const BRUSH = 20;        // on the 280 px canvas: ~2 px at 28x28, MNIST's stroke width
const PATCH = 6;         // "Why?": the page blanks 6x6 patches of what the model saw,
const STRIDE = 2;        // every 2 px: 144 patches, read in one batch
const GRID = 4;          // the generator's grid: 4x4 digits
const WALK_STEPS = 8;    // digits in a walk, both ends included
const $ = (id) => document.getElementById(id);
const bytes = (base64) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
const site = window.MNISTLAB_SITE;

const blobUrl = (base64, type) => URL.createObjectURL(new Blob([bytes(base64)], { type }));
ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = { mjs: blobUrl(window.ORT_GLUE, "text/javascript"), wasm: blobUrl(window.ORT_WASM, "application/wasm") };

/** A model's inference session, made once: its script (base64 ONNX) is added to the page on first use. */
const sessions = {};
function session(model) {
  sessions[model.name] ??= new Promise((resolve, reject) => {
    const script = Object.assign(document.createElement("script"), { src: model.script });
    script.onload = resolve;
    script.onerror = () => reject(new Error(`${model.script} could not be loaded`));
    document.head.append(script);
  }).then(() => ort.InferenceSession.create(bytes(window.MNISTLAB_ONNX[model.name])));
  return sessions[model.name];
}

/** One inference at a time: the WebAssembly runtime runs one at once, and two at once never finish. */
let queue = Promise.resolve();
function inTurn(task) {
  const run = queue.then(task);
  queue = run.catch(() => {});
  return run;
}

// ---------------------------------------------------------------------------------------------
// The reader

const readers = site.reader ? site.reader.models : [];
let reader = readers.find((m) => `#${m.name}` === location.hash) || readers[0];  // #int8 picks the small one

/** One framed digit (784 numbers in [0, 1], light ink on black) as `predict` sees it: its calibrated
 * probabilities, and its digitness (the share of the run's validation digits less digit-like; null for a run
 * made before the scale). */
function assess(pixels) {
  return inTurn(async () => {
    const input = new ort.Tensor("float32", Float32Array.from(pixels), [1, 1, SIZE, SIZE]);
    const output = await (await session(reader)).run({ images: input });
    const logits = Array.from(output.logits.data);  // already divided by the run's temperature
    const peak = Math.max(...logits);
    const e = logits.map((v) => Math.exp(v - peak));
    const total = e.reduce((a, b) => a + b, 0);
    return { probabilities: e.map((v) => v / total), digitness: output.digitness ? output.digitness.data[0] : null };
  });
}

const classify = async (pixels) => (await assess(pixels)).probabilities;

/** What `predict` answers, by the run's own rule (mnistlab.ood): the digit, or why none is named. */
function answer({ probabilities, digitness }) {
  const classes = site.reader.classes;
  const [first, second] = probabilities.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]).map(([, i]) => i);
  if (digitness !== null && digitness < 1 - site.reader.keep) return { label: null, reason: "not a digit" };
  if (probabilities[first] < site.reader.unsure) {
    return { label: null, reason: `unsure: ${classes[first]} or ${classes[second]}` };
  }
  return { label: classes[first], reason: null };
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

/** "Why?" for a framed digit, without gradients (the runtime here only runs models forward): occlusion, as
 * Captum's `Occlusion` computes it. The digit and each copy of it with a 6x6 patch blanked go through in one
 * batch; the answer is the digit's likeliest class, and a pixel's attribution the mean fall of that class's
 * logit over the patches that cover it: positive where the ink argued for the answer, negative against.
 * Returns the answer's index and label, and its map (784 numbers). */
function why(pixels) {
  return inTurn(async () => {
    const patches = [];
    for (let y = 0; y + PATCH <= SIZE; y += STRIDE) for (let x = 0; x + PATCH <= SIZE; x += STRIDE) patches.push([x, y]);
    const area = SIZE * SIZE;
    const batch = new Float32Array((patches.length + 1) * area);  // the digit itself first, then each blanked
    batch.set(pixels);
    patches.forEach(([x0, y0], n) => {
      const image = batch.subarray((n + 1) * area, (n + 2) * area);
      image.set(pixels);
      for (let y = y0; y < y0 + PATCH; y++) image.fill(0, y * SIZE + x0, y * SIZE + x0 + PATCH);
    });
    const input = new ort.Tensor("float32", batch, [patches.length + 1, 1, SIZE, SIZE]);
    const logits = (await (await session(reader)).run({ images: input })).logits.data;
    const classes = logits.length / (patches.length + 1);
    const whole = Array.from(logits.subarray(0, classes));
    const target = whole.indexOf(Math.max(...whole));  // the likeliest class: softmax keeps the order
    const fall = new Float32Array(area), covered = new Float32Array(area);
    patches.forEach(([x0, y0], n) => {
      const drop = logits[target] - logits[(n + 1) * classes + target];
      for (let y = y0; y < y0 + PATCH; y++) for (let x = x0; x < x0 + PATCH; x++) {
        fall[y * SIZE + x] += drop;
        covered[y * SIZE + x] += 1;
      }
    });
    return { target, label: site.reader.classes[target], map: Array.from(fall, (f, i) => f / covered[i]) };
  });
}

const percent = (p) => `${(100 * p).toFixed(1)}%`;

function show(pixels, assessed) {
  const { probabilities, digitness } = assessed;
  const best = probabilities.indexOf(Math.max(...probabilities));
  const { label, reason } = answer(assessed);
  $("prediction").textContent = label ?? (reason === "not a digit" ? "not a digit" : `${reason.slice(8)}?`);
  $("digitness").textContent = digitness === null ? "" : reason === "not a digit"
    ? `Not a digit: less digit-like than ${percent(site.reader.keep)} of the digits the model was checked on.`
    : `Digit-like: more than ${percent(digitness)} of the digits the model was checked on.`;
  [...$("probabilities").children].forEach((li, i) => {
    li.querySelector(".fill").style.width = percent(probabilities[i]);
    li.querySelector(".pct").textContent = percent(probabilities[i]);
    li.classList.toggle("top", i === best);
  });
  paintSeen(pixels);
}

/** What the model saw, in grey; with "Why?" on, tinted by its map once that is computed. */
function paintSeen(pixels) {
  const seen = new ImageData(SIZE, SIZE);
  pixels.forEach((v, i) => seen.data.set([255 * v, 255 * v, 255 * v, 255], 4 * i));
  $("seen").getContext("2d").putImageData(seen, 0, 0);
  forgetWhy();
  if ($("why").checked) explain(pixels);
}

let explaining = 0;  // the latest "Why?": one for an older digit, finishing late, is dropped

function forgetWhy() {
  explaining++;
  $("why-text").hidden = true;
}

async function explain(pixels) {
  const request = ++explaining;
  $("why-text").textContent = "Blanking patches…";
  $("why-text").hidden = false;
  const { label, map } = await why(pixels);
  if (request !== explaining || !$("why").checked) return;
  paintMap($("seen"), pixels, map);  // heatmap.js
  $("why-text").innerHTML = '<span class="for">Red</span>: ink that made it a <b></b>; '
    + '<span class="against">blue</span>: ink against it. Found by blanking 6×6 patches in turn and watching '
    + "the answer fall (the page runs the model forward only; the server explains with gradients).";
  $("why-text").querySelector("b").textContent = label;
}

let shown = null;  // the framed digit on view, read again when the model changes

async function read(image) {
  const pixels = frame(image);
  shown = null;
  if (!pixels.some((v) => v > 0)) {
    $("prediction").textContent = "–";
    $("digitness").textContent = "";
    forgetWhy();
    $("status").textContent = "No ink found: draw a digit, or open a photo of one.";
    return;
  }
  show(pixels, await assess(pixels));
  shown = pixels;
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
  $("digitness").textContent = "";
  forgetWhy();
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

/** Read with another of the site's readers (fp32, int8); the link's #name keeps the choice. */
function use(name) {
  reader = readers.find((m) => m.name === name) || reader;
  $("model").value = reader.name;
  history.replaceState(null, "", `#${reader.name}`);
  return session(reader);
}

$("why").addEventListener("change", () => {
  if (shown) paintSeen(shown);  // explained when checked, the plain view when not
});

$("model").addEventListener("change", async () => {
  await use($("model").value);
  if (shown) show(shown, await assess(shown));
});

// ---------------------------------------------------------------------------------------------
// The generator: a grid of new digits, and a walk between two seeds. The page draws its own noise
// (a seeded mulberry32), so a seed here gives other digits than the same seed in `mnistlab generate`.

const generator = site.generator;

function randomFrom(seed) {  // mulberry32: uniform on [0, 1)
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One latent vector, as the generator was trained: its noise, then the one-hot of the digit (or cluster). */
function latent(random, digit) {
  const z = Array.from({ length: generator.nz }, () => generator.noise === "uniform" ? 2 * random() - 1
    : Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random()));  // Box-Muller
  if (!generator.classes) return z;
  let pick = digit;
  if (pick === null && generator.shares) {  // clusters, in their shares of the training images
    let u = random();
    pick = generator.shares.findIndex((share) => (u -= share) < 0);
    if (pick < 0) pick = generator.shares.length - 1;
  } else if (pick === null) {
    pick = Math.floor(random() * generator.classes);
  }
  return z.concat(Array.from({ length: generator.classes }, (_, i) => (i === pick ? 1 : 0)));
}

/** Latent vectors -> digits, each 784 numbers 0..255 (255 = ink), as `mnistlab generate` maps them. */
function draw(latents) {
  return inTurn(async () => {
    const input = new ort.Tensor("float32", Float32Array.from(latents.flat()), [latents.length, latents[0].length]);
    const output = Object.values(await (await session(generator)).run({ z: input }))[0].data;
    const pixel = generator.real_range === "0,1" ? (x) => Math.min(Math.max(x, 0), 1)
      : (x) => (Math.min(Math.max(x, -1), 1) + 1) / 2;
    return latents.map((_, n) => Array.from(output.subarray(n * SIZE * SIZE, (n + 1) * SIZE * SIZE),
                                            (x) => Math.round(255 * pixel(x))));
  });
}

function paintDigits(canvas, digits, columns) {
  const image = new ImageData(columns * SIZE, Math.ceil(digits.length / columns) * SIZE);
  digits.forEach((digit, n) => digit.forEach((v, i) => {
    const x = (n % columns) * SIZE + (i % SIZE), y = Math.floor(n / columns) * SIZE + Math.floor(i / SIZE);
    image.data.set([v, v, v, 255], 4 * (y * image.width + x));
  }));
  canvas.getContext("2d").putImageData(image, 0, 0);
}

async function drawGrid() {
  const random = randomFrom(Number($("seed").value));
  const digit = $("digit").value === "" ? null : Number($("digit").value);
  paintDigits($("grid"), await draw(Array.from({ length: GRID * GRID }, () => latent(random, digit))), GRID);
  $("gan-status").textContent = "Drawn in this page.";
}

async function drawWalk() {
  const [a, b] = [latent(randomFrom(Number($("seed-a").value)), null), latent(randomFrom(Number($("seed-b").value)), null)];
  const steps = Array.from({ length: WALK_STEPS }, (_, s) => a.map((v, i) => v + (s / (WALK_STEPS - 1)) * (b[i] - v)));
  paintDigits($("walk"), await draw(steps), WALK_STEPS);
}

for (const [form, action] of [["grid-form", drawGrid], ["walk-form", drawWalk]]) {
  $(form).addEventListener("submit", (event) => {
    event.preventDefault();
    action().catch((e) => { $("gan-status").textContent = `Could not draw: ${e.message || e}`; });
  });
}
$("digit").addEventListener("change", () => $("grid-form").requestSubmit());

// ---------------------------------------------------------------------------------------------
// Start: show what the site holds, and say when each model is ready.

const about = [];
const ready = [];
if (site.reader) {
  $("reader").hidden = $("answer").hidden = false;
  $("probabilities").replaceChildren(...site.reader.classes.map((name) => {
    const li = document.createElement("li");
    li.innerHTML = '<span class="name"></span><span class="bar"><span class="fill"></span></span><span class="pct">–</span>';
    li.querySelector(".name").textContent = name;
    return li;
  }));
  $("model").replaceChildren(...readers.map((m) => {
    const accuracy = m.test_acc === undefined ? "" : `, test ${(100 * m.test_acc).toFixed(2)} %`;
    return new Option(`${m.name} (${(m.bytes / 1024).toFixed(0)} KB${accuracy})`, m.name, false, m === reader);
  }));
  about.push(`reader ${site.reader.source}`);
  clear();
  ready.push(session(reader).then(() => { $("status").textContent = "Ready: draw a digit."; },
                                  (e) => { $("status").textContent = `The model could not start: ${e.message || e}`; throw e; }));
}
if (generator) {
  $("generator").hidden = false;
  if (generator.asks_digits) {
    $("digit").append(...Array.from({ length: 10 }, (_, d) => new Option(String(d), String(d))));
  } else {
    $("digit-choice").hidden = true;
  }
  about.push(`generator ${generator.source}`);
  ready.push(Promise.all([drawGrid(), drawWalk()]).catch((e) => {
    $("gan-status").textContent = `The generator could not start: ${e.message || e}`;
    throw e;
  }));
}
$("about").textContent = `Models: ${about.join("; ")}; run by onnxruntime-web in this page.`;
window.mnistlab = { classify, assess, answer, why, frame, draw, use, ready: Promise.all(ready).then(() => true) };
