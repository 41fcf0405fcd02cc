"""The Starlette REST layer: routes, auth, request parsing, error mapping, OpenAPI."""
