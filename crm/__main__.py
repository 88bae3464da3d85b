# `python -m crm <command>` stays the operator's entry point; the commands live in ops/cli.py
# (a layer above crm). This import is the one declared exception in pyproject's contract.
from ops.cli import main

raise SystemExit(main())
