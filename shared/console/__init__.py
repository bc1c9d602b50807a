"""The partner console (``console/…``): the registration portal, tenant onboarding, signing keys
and the Patients app view, as server-rendered pages on the web kit (``shared/web``).

Each module owns one idea:

- ``access``: who the browser is (a local session signed in with the admin key, or an Entra
  principal from App Service Authentication) and what they may do (``shared/operators.py``).
- ``key``: the console's own secret (``console-key``), from which form tokens are derived.
- ``rules``: what the pages show and accept: secret expiry choices and their maximum, grace
  periods, the rows of a client's "Certificates & secrets", dates written one way only.
- ``app``: the routes and their handlers: every POST is checked for the change role, the
  Origin and a CSRF token before it runs, and every change is an audit event naming the operator.
- ``appview``: the Patients app view: what the app did in EHR mode, over HTTP against the
  public endpoints, with each call's status and time and what the interface specs require.
"""
