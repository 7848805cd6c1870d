"""The sandbox: simulated target platforms, the other side of the wire (PROTOCOLS.md "The sandbox").

Written from PROTOCOLS.md and STANDARDS.md, never from the adapters: it imports nothing from ``adapters`` outside
this folder and shares only the contract files in ``schemas/contract``, so a mapping bug cannot hide on both
sides. ``app.create_sandbox`` builds the ASGI app; ``state`` keeps what it accepted; ``rules`` are the platforms'
data-quality checks; ``faults`` are the bad days it can simulate.
"""
