"""`python -m visionsweep ...` is the `visionsweep` command."""

from visionsweep.search.cli import main

raise SystemExit(main())
