"""The FHIR proxy: ``ANY fhir/{face}/{*path}`` to the provider FHIR server of the caller's tenant.

Pipeline (handler.py): verify the bearer token (bearer.py) → validate the path, query and
headers (paths.py, headers.py) → decide the interaction (read, search, batch) → convert the
request to the provider's version (conversion.py) → call the provider with its own auth
(transport.py, provider_auth.py; the breaker is ``shared/circuit.py``) → convert the response
back → rewrite provider URLs to the face's (rewrite.py) → one audit event.
"""
