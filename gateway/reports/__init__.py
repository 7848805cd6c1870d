"""公示率 reports: the period asked for, the numbers computed by the database, and the files leadership reads.

``periods`` parses 2026-10 / 2026-Q4 / 2026 / 2026-10-05; ``build`` asks the store for the aggregates and assembles
one JSON-able report; ``render`` writes it as JSON, CSV, XLSX (one sheet per view, Chinese headers) or a
stand-alone HTML page with a chart of 公示率 over time. A stored report is its JSON; any format is rendered from it.
"""
