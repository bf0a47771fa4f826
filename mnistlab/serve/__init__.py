"""The web app: draw a digit and watch the CNN read it, watch the GAN draw (`mnistlab serve`).

`mnistlab.serve.app.create_app` builds the FastAPI app, `mnistlab.serve.app.serve` runs it with uvicorn.
Nothing is imported here, so that `import mnistlab.serve` does not pull in FastAPI.
"""
