"""Thin HTTP-trigger blueprints: parse the request, call shared/, return the response."""
