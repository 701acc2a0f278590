"""`pix2pix serve`: a run's generator behind an HTTP API and a page to draw on (FastAPI and uvicorn, the `serve`
extra). `translation` holds the bounded queue and the image work, `upload` reads requests without touching the
disk, `palette` finds the label colours of a run's inputs, `app` wires them to the routes and `static/` is the page.
"""
