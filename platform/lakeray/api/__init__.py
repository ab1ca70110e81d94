"""HTTP API assembly: the FastAPI app, its backends and the Ray Serve ingress."""
