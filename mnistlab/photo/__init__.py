"""Photos of handwritten digits, from the page to a number, in the order the stages run:

    ink.py    page -> ink: light evened out, noise measured, ruled and squared lines removed, pieces labelled
    frame.py  any image -> greyscale; one digit's ink -> MNIST's framing (20x20 box in 28x28, centre of mass)
    read.py   ink -> digits left to right -> a number (pieces merged, touching digits split, dots ignored)
    synth.py  photo-like test images of real test digits and numbers (and of non-digits), for benchmarks and tests
    marks.py  handwriting-like marks that are not digits: letters, symbols, shapes, scribbles, textures

The networks see only what `frame` hands them (`mnistlab.inference`); these stages are NumPy and OpenCV.
"""
