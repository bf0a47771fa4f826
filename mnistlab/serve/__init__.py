"""The web app: draw a digit or a number, or show a photo of one, and watch the CNN read it; watch the GAN
draw (`mnistlab serve`).

    app.py         create_app (models → app.state, middleware, routers), serve (uvicorn), newest_runs
    routes.py      the API's routes and the page's, reading app.state
    schemas.py     the pydantic models every request and answer is validated against
    middleware.py  the body limits (10 MB uploads, 1 MB else); JSON sent to /api/predict forwarded to /pixels
    batching.py    MicroBatcher: concurrent predictions share one forward pass
    static/        the page: app.js (drawing, the GAN, talking to the API), reading.js (what was read, and
                   the photo with its boxes)

Nothing is imported here, so that `import mnistlab.serve` does not pull in FastAPI (the `serve` extra).
"""
