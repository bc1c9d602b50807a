"""The authorization server: everything about who a client is and what it is given.

- :mod:`shared.auth.token_endpoint`: ``POST oauth2/token``, RFC 6749 client credentials;
- :mod:`shared.auth.client_auth`: how a client proves who it is, one registered method per
  request (``client_secret_basic``, ``client_secret_post``);
- :mod:`shared.auth.client_secrets`: the stored form of a client secret and its comparison;
- :mod:`shared.auth.clients`: the client registry (records in Table Storage, secrets in Key Vault);
- :mod:`shared.auth.throttle`: the failed-authentication throttle;
- :mod:`shared.auth.tokens`, :mod:`shared.auth.signing_keys`, :mod:`shared.auth.jwks`: the access
  tokens we sign, the keys they are signed with, and the published public keys.

Nothing outside this package compares a client secret or knows which methods exist: the proxy
verifies the tokens this package issues (``shared.proxy.bearer``), nothing more.
"""
