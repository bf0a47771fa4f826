"""`python -m mnistlab` (and `torchrun -m mnistlab`) runs the CLI."""

from mnistlab.cli import main

raise SystemExit(main())
