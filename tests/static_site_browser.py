"""Run by tests/test_static_site.py in a process of its own, so that a hung page is a timeout there rather than
a hung suite: open the exported site from file:// in Chromium, offline, and print what it showed as JSON.

    python tests/static_site_browser.py SITE_DIR DIGITS.npy PHOTO.png LATENTS.npy
"""

import json
import sys
from pathlib import Path

import numpy as np
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
CLASSIFY = "async (images) => Promise.all(images.map((x) => window.mnistlab.classify(x)))"
ANSWER = "async (images) => Promise.all(images.map(async (x) => mnistlab.answer(await mnistlab.assess(x))))"
WHY = "async (images) => Promise.all(images.map((x) => window.mnistlab.why(x)))"
PAINTED = """() => Array.from(document.querySelector('#seen').getContext('2d').getImageData(0, 0, 28, 28).data)"""


def main(site: Path, digits: np.ndarray, photo: Path, latents: np.ndarray) -> dict:
    with sync_playwright() as playwright:
        # Offline: every request that would leave the machine goes to a proxy that is not there, and is noted.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>"])
        page = browser.new_page()
        left, problems = [], []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("request", lambda r: r.url.startswith(("file:", "blob:", "data:")) or left.append(r.url))
        page.goto((site / "index.html").as_uri())
        page.wait_for_function("() => window.mnistlab", timeout=60000)
        page.evaluate("() => window.mnistlab.ready")
        status = page.locator("#status").inner_text()
        pixels = (digits.reshape(len(digits), -1) / 255).tolist()
        probabilities = {"fp32": page.evaluate(CLASSIFY, pixels)}
        answers = page.evaluate(ANSWER, pixels)
        page.set_input_files("#upload", str(photo))  # a photo of one digit, framed in the page
        page.wait_for_function("() => document.querySelector('#status').textContent === 'Read in this page.'")
        photo_label = page.locator("#prediction").inner_text()
        photo_digitness = page.locator("#digitness").inner_text()
        seen = page.evaluate("""() => Array.from(document.querySelector('#seen').getContext('2d')
                                .getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 === 0))""")
        why = page.evaluate(WHY, pixels[:3])
        page.check("#why")  # the photo's reading, explained on the page
        page.wait_for_function("() => document.querySelector('#why-text').textContent.startsWith('Red')")
        why_text, why_painted = page.locator("#why-text").inner_text(), page.evaluate(PAINTED)
        page.uncheck("#why")
        page.wait_for_function("() => document.querySelector('#why-text').hidden")
        unexplained = page.evaluate(PAINTED)
        page.click("#clear")
        box = page.locator("#canvas").bounding_box()  # a drawn 1 is read too
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.48, box["y"] + box["height"] * 0.85, steps=20)
        page.mouse.up()
        page.wait_for_function("() => document.querySelector('#prediction').textContent !== '–'")
        drawn = page.locator("#prediction").inner_text()
        page.select_option("#model", "int8")  # the small reader, chosen on the page
        page.wait_for_function("() => location.hash === '#int8'")
        page.evaluate("() => window.mnistlab.use('int8')")
        probabilities["int8"] = page.evaluate(CLASSIFY, pixels)
        drawn_digits = page.evaluate("(z) => window.mnistlab.draw(z)", latents.tolist())
        grid = page.evaluate("""() => Array.from(document.querySelector('#grid').getContext('2d')
                                .getImageData(0, 0, 112, 112).data.filter((_, i) => i % 4 === 0))""")
        browser.close()
    return {"status": status, "probabilities": probabilities, "answers": answers, "photo_label": photo_label,
            "photo_digitness": photo_digitness, "seen": seen, "why": why, "why_text": why_text,
            "why_painted": why_painted, "unexplained": unexplained,
            "drawn": drawn, "generated": drawn_digits, "grid": grid, "left": left, "problems": problems}


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), np.load(sys.argv[2]), Path(sys.argv[3]), np.load(sys.argv[4]))))
