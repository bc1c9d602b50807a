"""The web kit: what every server-rendered HTML page of EHR Bridge is built from.

One kit for the sandbox editor (``shared/sandbox/ui.py``) and the partner console. Pages are
Jinja2 templates that work without JavaScript; an application describes itself as a ``Site``
(name, base path such as ``/api/sandbox/ui`` or ``/api/console``, navigation) and keeps its own
templates in a folder of its own, which extend ``kit/base.html`` and import
``kit/forms.html``. Free of azure.functions: handlers take and return ``shared.http`` values.

Each piece has one job:

- ``templates``: the Jinja2 Environment, made on the first render (autoescape for every
  template, StrictUndefined, one base layout), so importing the app never imports Jinja2.
- ``templates/base.html``: skip link, header with the site's name, navigation and a sign-out
  form, one ``<main>``. ``templates/forms.html``: labelled inputs and selects with hints and
  per-field errors tied by aria-describedby, the error summary linking to fields, buttons,
  status messages (role=status), tables with captions, and the "shown once" secret panel whose
  Copy button only the script reveals. ``templates/message.html``: a heading and a sentence.
- ``static/kit.css`` and ``static/kit.js``, inlined by ``assets`` and allowed by their hashes.
- ``headers``: the page headers: a CSP with no 'unsafe-inline' and no nonce, ``no-store``,
  ``frame-ancestors 'none'``, Referrer-Policy, nosniff.
- ``pages``: ``Site``, ``Visitor`` (signed in? the page's CSRF token, a cookie to set) and
  ``Pages``, which renders a template, a redirect or a message page as a ``Response``.
- ``forms``: reading a submitted form (media type, size and field caps, UTF-8) and
  ``FieldErrors``. ``errors``: ``PageError``, answered as a message page.
- ``cookies``: HttpOnly, SameSite=Strict cookies scoped to the site's base path.
- ``login``: the session cookie over ``shared/sessions.py`` (server-side expiry, sign-out,
  binding to the credential that signed in).
- ``csrf``: a token in every POST form, HMAC-bound to the session, or before sign-in to a
  pre-session cookie. ``origin``: the Origin / Sec-Fetch-Site check every POST passes first.
- ``routing``: the handler of a page for the request's method (405 with ``Allow`` otherwise), once
  a POST has passed the origin check.

Rules for pages built on it: every change is a POST that carries the CSRF token and answers
with a redirect (or the form again, with errors); a secret is rendered only in the answer to
the POST that created it (never after a redirect, never again); every value goes through the
template's autoescaping (``|safe`` and ``Markup`` are for the kit's own static files only).
"""
