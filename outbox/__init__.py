"""The transactional outbox: where records, their versions and their deliveries to each target are kept.

``tables`` declares the schema (migrated by Alembic, ``outbox/migrations``), ``database`` opens engines and
translates driver errors, ``ingest`` and ``withdrawals`` are the write transactions sources trigger, ``views``
reads what operators and sources look at, ``keys`` and ``audit`` keep API keys (hashed) and the append-only log.
``states`` is the delivery vocabulary. This package never speaks HTTP and never reads the wall clock: callers
hand it ``now``.
"""
