"""Allow ``python -m rdesk``."""

from rdesk.cli import main

raise SystemExit(main())
