"""Alembic migrations of the outbox schema, shipped inside the package so `credit-gateway migrate` works anywhere."""
