// "Teach it my handwriting": the digits a person keeps, each with the label they gave it, go to /api/teach,
// which fine-tunes the served reader on them in the background; the page polls /api/teach for its progress
// and, when the new run is ready, says so (the server now reads with it).

import { $ } from "/reading.js";

const MIN_EACH = 3;      // of each digit taught, as the server asks (a tenth of each is held out to test on)
const MIN_DIGITS = 2;    // different digits
const MAX_KEPT = 100;    // the most the server takes at once
const POLL_MS = 500;

const kept = [];         // {label, image}: image 28x28 in [0, 1], as the model saw it

function counted() {
  const counts = new Map();
  for (const { label } of kept) counts.set(label, (counts.get(label) || 0) + 1);
  return counts;
}

function showKept() {
  const counts = counted();
  const list = [...counts].sort(([a], [b]) => a - b).map(([label, n]) => `${label}×${n}`).join(", ");
  $("teach-count").textContent = kept.length ? `${kept.length} kept: ${list}.` : "No digits kept yet.";
  const ready = counts.size >= MIN_DIGITS && Math.min(...counts.values()) >= MIN_EACH;
  $("teach-keep").disabled = kept.length >= MAX_KEPT;
  $("teach-start").disabled = !ready;
  $("teach-start").title = ready ? "" : `At least ${MIN_EACH} of each digit you teach, two digits or more.`;
}

/** Wire the panel: `digit()` gives the digit on view (or null); `clear()` empties the canvas for the next one;
 * `done(status)` is called when the new run is ready; `api` is the page's fetch, which throws the server's
 * explanation (`detail`) on an error answer. */
export function startTeaching({ digit, clear, done, api }) {
  $("teach-keep").addEventListener("click", () => {
    const shown = digit();
    if (!shown) {
      $("teach-status").textContent = "Draw or photograph a digit first.";
      return;
    }
    const label = Number($("teach-label").value);
    kept.push({ label, image: shown.image.map((row) => row.map((v) => Math.round(v * 1000) / 1000)) });
    $("teach-label").value = String((label + 1) % 10);  // then the next digit
    $("teach-status").textContent = `Kept as a ${label}. Now write a ${$("teach-label").value}.`;
    showKept();
    clear();
  });
  $("teach-forget").addEventListener("click", () => {
    kept.length = 0;
    $("teach-status").textContent = "";
    showKept();
  });
  $("teach-start").addEventListener("click", async () => {
    $("teach-start").disabled = true;
    $("teach-status").textContent = "Starting…";
    try {
      await api("/api/teach", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ digits: kept }),
      });
      follow(api, done);
    } catch (e) {
      $("teach-status").textContent = `Could not start: ${e.detail || e.message}`;
      showKept();
    }
  });
  showKept();
}

async function follow(api, done) {
  $("teach-progress").hidden = false;
  for (;;) {
    const status = await (await api("/api/teach")).json();
    if (status.state === "running") {
      $("teach-progress").value = status.epoch / status.epochs;
      $("teach-status").textContent = status.epoch < status.epochs
        ? `Fine-tuning: epoch ${status.epoch} of ${status.epochs}…` : "Calibrating the new run…";
    } else {
      $("teach-progress").hidden = true;
      if (status.state === "done") {
        kept.length = 0;
        $("teach-status").textContent = `Done: the page now reads with ${status.run}, taught your hand `
          + `(your digits saved in ${status.digits}).`;
        done(status);
      } else {
        $("teach-status").textContent = `Fine-tuning failed: ${status.error}`;
      }
      showKept();
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
