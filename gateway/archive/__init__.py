"""Import of existing records from the national template (``credit-gateway import``)."""
