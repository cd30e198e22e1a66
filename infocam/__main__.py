"""`python -m infocam` is the same as the `infocam` command."""

from infocam.cli import main

raise SystemExit(main())
