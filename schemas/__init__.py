"""The canonical credit records and the rules they obey.

This package is the domain's vocabulary: the four record kinds of CONTRACT.md as pydantic models, their
enumerations with Chinese labels, the national standard's identifier and date rules, and the contract files that
targets use (``schemas/contract``). It imports nothing of ours and does no I/O, so every other room may lean on it.
"""
