"""The web app: draw a digit and watch the CNN read it, watch the GAN draw (`mnistlab serve`).

    app.py         create_app (models → app.state, middleware, routers), serve (uvicorn), newest_runs
    routes.py      the API's routes and the page's, reading app.state
    schemas.py     the pydantic models every request and answer is validated against
    middleware.py  the 1 MB body limit; JSON sent to /api/predict forwarded to /api/predict/pixels
    batching.py    MicroBatcher: concurrent predictions share one forward pass
    static/        the page

Nothing is imported here, so that `import mnistlab.serve` does not pull in FastAPI (the `serve` extra).
"""
