"""The gateway: configuration, the composition root, the HTTP API, the CLI and (later) scheduled jobs.

``gateway.app.build_app`` wires everything; ``gateway.cli`` is the ``credit-gateway`` command. This is the only
package that knows all the others.
"""
