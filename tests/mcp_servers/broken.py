"""An MCP server that cannot start: it says why on stderr and exits with status 3."""

import sys

print("broken server: cannot open its database, giving up", file=sys.stderr, flush=True)
sys.exit(3)
