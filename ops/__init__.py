"""Operator tools, layered above the core: the CLI behind `python -m crm`, the `up`
supervisor, the doctor, demo seeding and sandbox wiring, and the soak run.

None of this is a business rule: each tool calls crm/ (rules and workflows) and db/
(data), and may start the sidecar (webhook/) or the sandbox; nothing below imports it.
"""
