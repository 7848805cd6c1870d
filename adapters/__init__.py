"""Target adapters: one module per platform (national, provincial, municipal, portal), each a pure mapping of a
record version to the platform's payload plus the interpretation of its replies, behind one small interface.

Filled by the adapters issue; adapters import ``schemas`` only and never touch the database.
"""
