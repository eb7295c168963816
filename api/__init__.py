"""HTTP layer: FastAPI app factory, lifespan, routes, request/response schemas, auth, errors."""
