"""The application layer: every use case once, plain values in (an ``Actor``, ids, reasons), plain values out.

Routers, CLI commands and scheduled jobs only translate their medium to a call here and back, so a rule or an
audit entry cannot be missing on one path. Built by the composition root, ``gateway.compose``, as one
``Services`` (``services/bundle.py``).

Where each use case lives:

* ``records``: ingest (and the audit of a refused request), withdraw, the record view (``services/records.py``)
* ``operations``: dead letters, requeue, cancel, pause, resume, replay (``services/operations.py``)
* ``targets``: each target's status (``services/targets.py``)
* ``keys``: API keys, and the cached look-up of authentication (``services/keys.py``)
* ``housekeeping``: reconcile, report, expire, at-risk, rates, due-date refresh (``gateway/housekeeping.py``)
* ``mailer``: report mail (``gateway/mailer.py``); ``checks()``: credit checks (``gateway/checks.py``)
* ``people()``: users and sessions (``gateway/people.py``); ``importer()``: the archive import
  (``gateway/archive/importer.py``); ``audit``: the audit log's list and verify (``outbox.audit`` via the store)
"""
