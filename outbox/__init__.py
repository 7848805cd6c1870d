"""The transactional outbox: where records, their versions and their deliveries to each target are kept.

``tables`` declares the schema (migrated by Alembic, ``outbox/migrations``), ``database`` opens engines and
translates driver errors. Writes: ``ingest`` and ``withdrawals`` (what sources trigger), ``leases`` (workers
leasing, settling and reaping deliveries), ``operations`` (operator actions). ``lifecycle`` is the delivery state
machine and retry policy, pure; ``states`` its vocabulary; ``notify`` the PostgreSQL wake-ups; ``views`` the read
models; ``keys`` the hashed API keys. This package never speaks HTTP and never reads the wall clock: callers hand
it ``now``.
"""
