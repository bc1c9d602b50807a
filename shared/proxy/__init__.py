"""The FHIR proxy: ``ANY fhir/{face}/{*path}`` to the provider FHIR server of the caller's tenant.

Pipeline (handler.py): verify the bearer token (bearer.py) → validate the path, query and
headers (shared/fhir/paths.py, headers.py) → decide the interaction (interaction.py: read,
search, history, batch, write) → convert the request to the provider's version (conversion.py)
→ call the provider the one way there is (upstream.py: the request's budget; transport.py with
our credential, whose kind is a row of auth_kinds.py; the breaker is ``shared/circuit.py``) →
take the answer back step by step (answer.py: checked, converted to the face's version,
headers allow-listed, provider URLs rewritten to the face's with rewrite.py) → one audit event.
"""
