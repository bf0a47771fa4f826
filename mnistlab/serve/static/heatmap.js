// The map both pages paint for "Why?". A classic script, not a module: the page that needs no server is
// opened from file://, where Chromium refuses modules, and it shares this file with the server's page.

"use strict";

/** Paint a 28x28 `image` (784 numbers in 0..1) in grey on `target`, tinted by `map` (784 numbers): red where
 * it is positive, blue where negative, at full strength for the map's largest magnitude. */
function paintMap(target, image, map) {
  const values = Array.from(map);
  const peak = Math.max(1e-9, ...values.map(Math.abs));
  const pixels = new ImageData(target.width, target.height);
  Array.from(image).forEach((v, i) => {
    const grey = 40 + 120 * v;
    const m = values[i] / peak;
    const rgb = m >= 0 ? [grey + (255 - grey) * m, grey * (1 - m), grey * (1 - m)]
      : [grey * (1 + m), grey * (1 + m) + (120 - grey) * -m, grey + (255 - grey) * -m];
    pixels.data.set([...rgb.map(Math.round), 255], i * 4);
  });
  target.getContext("2d").putImageData(pixels, 0, 0);
}
