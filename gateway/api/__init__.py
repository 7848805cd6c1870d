"""HTTP routers of the contract (``/api/v1``), the operational endpoints, and RFC 9457 problem handling."""
