// What the model read, shown: the number, each digit's 28x28 image and probabilities, and the photo with a box
// over each digit. Also the photo's shrinking, in the browser, before it is sent (a phone photo is 2–5 MB).

export const $ = (id) => document.getElementById(id);
export const SIZE = 28;                // what the models see
const PHOTO_PIXELS = 2_000_000;        // photos are sent at about this size: reading works at 480 px tall anyway

let classes = [...Array(10).keys()].map(String);
let shown = null;                      // the reading on display: /api/read's answer
let selected = 0;                      // the digit of it whose probabilities and image are shown
let photoUrl = null;

/** Paint a 28x28 array (values 0..1, or 0..255 when `max` is 255) onto a 28x28 canvas, grey levels. */
export function paint(target, image, max = 1) {
  const pixels = new ImageData(SIZE, SIZE);
  image.flat().forEach((v, i) => {
    const grey = Math.round((v / max) * 255);
    pixels.data.set([grey, grey, grey, 255], i * 4);
  });
  target.getContext("2d").putImageData(pixels, 0, 0);
}

/** The ten bars, one per class name (the loaded CNN's classes). */
export function buildBars(names = classes) {
  classes = names;
  $("probabilities").replaceChildren(...classes.map((name) => {
    const li = document.createElement("li");
    li.innerHTML = '<span class="name"></span><span class="bar"><span class="fill"></span></span><span class="pct">–</span>';
    li.querySelector(".name").textContent = name;
    return li;
  }));
}

const percent = (p) => `${(p * 100).toFixed(1)}%`;
const likeliest = (digit) => digit.probabilities.indexOf(Math.max(...digit.probabilities));

/** What a digit was read as: the digit, or why none was named ("not a digit", "4 or 9?"). */
function named(digit) {
  if (digit.digit !== null) return classes[digit.digit];
  return digit.reason.startsWith("unsure: ") ? `${digit.reason.slice(8)}?` : digit.reason;
}

/** How digit-like it is, in words: the share of the model's validation digits that are less so. */
function digitness(digit) {
  if (digit.digitness === null || digit.digitness === undefined) return "";
  if (digit.reason === "not a digit") return `Not a digit: less digit-like than ${percent(0.995)} of the digits the model was checked on.`;
  return `Digit-like: more than ${percent(digit.digitness)} of the digits the model was checked on.`;
}

/** One digit's probabilities in the bars and its 28x28 image in #seen; its chip and its box marked. */
function select(index) {
  selected = index;
  const digit = shown.digits[index];
  [...$("probabilities").children].forEach((li, i) => {
    li.querySelector(".fill").style.width = percent(digit.probabilities[i]);
    li.querySelector(".pct").textContent = percent(digit.probabilities[i]);
    li.classList.toggle("top", i === likeliest(digit));
  });
  $("digitness").textContent = digitness(digit);
  paint($("seen"), digit.image);
  if ($("why").checked) explainSelected();
  for (const list of [$("digits").children, $("boxes").children]) {
    [...list].forEach((item, i) => item.classList.toggle("selected", i === index));
  }
  [...$("digits").querySelectorAll("button")].forEach((b, i) => b.setAttribute("aria-pressed", i === index));
}

/** /api/read's answer: the number, a chip per digit (its image, digit and confidence), the first digit chosen. */
export function showReading(result) {
  shown = result;
  const refused = result.digits.filter((digit) => digit.digit === null);
  $("verdict").hidden = refused.length === 0;  // said in words, not only as "?"
  $("verdict").textContent = result.digits.length === 1 && refused.length
    ? `${named(refused[0])[0].toUpperCase()}${named(refused[0]).slice(1)}${refused[0].reason === "not a digit" ? "." : ""}`
    : `${refused.length} of ${result.digits.length} marks not read as one digit: ? in the number.`;
  $("prediction").textContent = result.text;
  $("prediction").classList.toggle("long", result.digits.length > 3);
  $("digits").replaceChildren(...result.digits.map((digit, i) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    const seen = document.createElement("canvas");
    seen.width = seen.height = SIZE;
    paint(seen, digit.image);
    const label = document.createElement("span");
    label.textContent = digit.digit === null ? named(digit)
      : `${classes[digit.digit]} · ${percent(digit.probabilities[digit.digit])}`;
    li.classList.toggle("refused", digit.digit === null);
    button.append(seen, label);
    button.setAttribute("aria-label", `mark ${i + 1}: ${label.textContent.replace(" · ", ", ")}`);
    button.addEventListener("click", () => select(i));
    li.append(button);
    return li;
  }));
  $("digits").hidden = result.digits.length < 2;  // one digit: the bars say it all
  drawBoxes(result);
  select(0);
}

/** The digit on view (one of /api/read's `digits`, with its 28x28 `image`), or null. */
export function shownDigit() {
  return shown ? shown.digits[selected] : null;
}

/** No digit found: the page says so (`message`), and shows no reading. */
export function showNoDigit(message) {
  resetReading();
  $("verdict").textContent = message;
  $("verdict").hidden = false;
}

export function resetReading() {
  shown = null;
  $("prediction").textContent = "–";
  $("prediction").classList.remove("long");
  $("verdict").hidden = true;
  $("digits").replaceChildren();
  $("boxes").replaceChildren();
  buildBars();
  $("seen").getContext("2d").clearRect(0, 0, SIZE, SIZE);
  $("digitness").textContent = "";
  $("why-text").hidden = $("why-runner-up").hidden = true;
}

// Why it answered: /api/explain's map over the 28x28 view, red where ink pushed the answer up, blue where
// it pushed it down; then what would have made it the runner-up.
let explaining = 0;  // the latest request: an older answer arriving late is dropped

async function explainSelected() {
  const digit = shown && shown.digits[selected];
  if (!digit) return;
  const request = ++explaining;
  try {
    const response = await fetch("/api/explain", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ image: digit.image }),
    });
    const why = await response.json();
    if (request !== explaining || !$("why").checked) return;
    if (!response.ok) throw new Error(why.detail);
    paintMap($("seen"), digit.image.flat(), why.attribution.flat());  // heatmap.js
    paintMap($("why-runner-up"), digit.image.flat(), why.toward_runner_up.flat());
    $("why-text").innerHTML = '<span class="for">Red</span>: ink that made it a <b></b>; '
      + '<span class="against">blue</span>: ink against it. Beside it, the runner-up <b></b>: red where ink '
      + "argues for it instead.";
    const [answer, runnerUp] = $("why-text").querySelectorAll("b");
    answer.textContent = why.label;
    runnerUp.textContent = `${why.runner_up_label} (${percent(why.probabilities[why.runner_up])})`;
    $("why-text").hidden = $("why-runner-up").hidden = false;
  } catch (e) {
    if (request !== explaining) return;
    $("why-text").textContent = `No explanation: ${e.message}`;
    $("why-text").hidden = false;
  }
}

$("why").addEventListener("change", () => {
  if ($("why").checked) explainSelected();
  else if (shown) {
    explaining++;
    $("why-text").hidden = $("why-runner-up").hidden = true;
    select(selected);
  }
});

/** A box over each digit of the photo, the digit read above it: in percent of the photo, so they scale with it. */
function drawBoxes(result) {
  if ($("photo-card").hidden) return;
  $("boxes").replaceChildren(...result.digits.map((digit, i) => {
    const [x0, y0, x1, y1] = digit.box;
    const box = document.createElement("div");
    box.className = y0 / result.height < 0.03 ? "box top" : "box";  // at the photo's top: its label inside
    box.classList.toggle("refused", digit.digit === null);  // marked, not left out
    Object.assign(box.style, {
      left: `${(100 * x0) / result.width}%`, top: `${(100 * y0) / result.height}%`,
      width: `${(100 * (x1 - x0)) / result.width}%`, height: `${(100 * (y1 - y0)) / result.height}%`,
    });
    const label = document.createElement("span");
    label.textContent = digit.digit === null ? "?" : classes[digit.digit];
    box.title = named(digit);
    box.append(label);
    box.addEventListener("click", () => select(i));
    return box;
  }));
}

/** Show `blob` as the photo being read (null: hide the photo card, as for a drawing). */
export function showPhoto(blob, name = "") {
  if (photoUrl) URL.revokeObjectURL(photoUrl);
  photoUrl = blob ? URL.createObjectURL(blob) : null;
  $("boxes").replaceChildren();
  $("photo-card").hidden = !blob;
  if (blob) {
    $("photo-image").src = photoUrl;
    $("photo-image").alt = `The photo ${name}`;
  } else {
    $("photo-image").removeAttribute("src");
  }
}

/**
 * The photo shrunk to about PHOTO_PIXELS, upright as its EXIF orientation says, as a JPEG blob; a photo no
 * larger is redrawn at its size (upright, and transparent paper made white, as the server would make it).
 * Throws when the browser cannot decode the file.
 */
export async function shrinkPhoto(file) {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  const blob = await shrunkJpeg(bitmap, bitmap.width, bitmap.height, PHOTO_PIXELS, 0.92);
  bitmap.close();
  if (!blob) throw new Error("the photo could not be re-encoded");
  return blob;
}

/** An image (a bitmap, a video's current frame) of width x height, shrunk to about `pixels` and drawn on white
 * paper (transparency is paper), as a JPEG blob of `quality`; null when the browser cannot encode it. */
export async function shrunkJpeg(image, width, height, pixels, quality) {
  const scale = Math.min(1, Math.sqrt(pixels / (width * height)));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.floor(width * scale));
  canvas.height = Math.max(1, Math.floor(height * scale));
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
}
