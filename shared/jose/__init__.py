"""Other parties' keys and documents, fetched from their URLs under EHR Bridge's rules.

- :mod:`shared.jose.jwk`: a JWK Set (RFC 7517) read into the public keys we would verify with,
  and nothing else (no private or symmetric keys, no short RSA keys, no ambiguous ``kid``);
- :mod:`shared.jose.fetch`: one GET of a JSON document over HTTPS, under the address policy
  (``shared/net``), with a size cap, time limits, no redirects, and its ``Cache-Control``;
- :mod:`shared.jose.remote`: those documents and key sets cached per URL for as long as their
  ``Cache-Control`` allows (bounded), with at most one re-fetch per interval for an unknown
  ``kid``.

Used by the Entra ID token check (``shared/proxy/entra.py``); built so that a client's
``jwks_uri`` (inbound ``private_key_jwt``, issue 17 section 1) can use the same fetch and cache.
"""
