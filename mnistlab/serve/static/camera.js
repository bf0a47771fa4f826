// Live camera reading: frames of the camera, shrunk to about CAMERA_PIXELS, go to /api/read one at a time.
// The next frame is taken only when the last answer is back, so it is always the newest frame and the camera
// never queues up work; the boxes and the number are drawn over the live video. "Freeze" keeps the frame
// on display and its reading.

import { $, showPhoto, shrunkJpeg } from "/reading.js";

const CAMERA_PIXELS = 480_000;  // ~0.5 MP: reading works at 480 px on the short side anyway
const RATE_WINDOW_MS = 3000;    // readings a second, over this long

let stream = null;
let running = false;
let answered = [];              // when each recent reading came back
let last = null;                // the newest frame read: {blob, result}

/** Start reading the camera: `read(blob, name)` answers /api/read (null: no digit), `show(result, blob)`
 * draws a reading, `none()` says there is no digit in view, `fail(message)` says what went wrong. */
export async function startCamera({ read, show, none, fail }) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    fail("No camera here: this browser gives the page none (it needs https or localhost). Upload a photo instead.");
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false,
    });
  } catch (e) {
    stream = null;
    fail(e.name === "NotAllowedError" ? "The camera was not allowed. Upload a photo instead."
      : `No camera: ${e.message || e.name}. Upload a photo instead.`);
    return;
  }
  const video = $("camera-video");
  video.srcObject = stream;
  await video.play();
  $("photo-card").hidden = false;
  $("photo-image").hidden = true;
  video.hidden = false;
  $("camera").hidden = true;
  $("freeze").hidden = false;
  running = true;
  answered = [];
  last = null;
  while (running) {
    const blob = await shrunkJpeg(video, video.videoWidth, video.videoHeight, CAMERA_PIXELS, 0.85);
    let result;
    try {
      result = await read(blob, "camera.jpg");
    } catch (e) {
      if (running) fail(`Could not read the camera: ${e.message}`);
      stopCamera();
      return;
    }
    if (!running) break;
    const now = performance.now();
    answered = [...answered.filter((t) => now - t < RATE_WINDOW_MS), now];
    last = { blob, result };
    if (result) show(result, blob);
    else none();
    const rate = answered.length > 1 ? (answered.length - 1) / ((now - answered[0]) / 1000) : 0;
    $("camera-status").textContent = `Reading live: ${rate.toFixed(1)} readings a second. Freeze to keep one.`;
    $("camera-status").dataset.rate = rate.toFixed(2);
  }
}

/** Stop reading; the newest frame read stays on display as a photo, with its reading. */
export function freezeCamera(show) {
  const kept = last;
  stopCamera();
  if (!kept) return;
  showPhoto(kept.blob, "from the camera");
  $("camera-status").textContent = "Frozen: the frame and its reading are kept. Camera to read live again.";
  if (kept.result) show(kept.result, kept.blob);
}

/** Stop the camera and its reading (drawing or uploading does too). */
export function stopCamera() {
  running = false;
  if (stream) stream.getTracks().forEach((track) => track.stop());
  stream = null;
  $("camera-video").hidden = true;
  $("camera-video").srcObject = null;
  $("photo-image").hidden = false;
  $("camera").hidden = false;
  $("freeze").hidden = true;
}

export const cameraRunning = () => running;
