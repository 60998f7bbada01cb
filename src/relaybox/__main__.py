from __future__ import annotations

from relaybox.cli.main import main

raise SystemExit(main())
