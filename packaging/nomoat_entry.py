"""The frozen app's entry point: the `nomoat` command, and the hidden `--smoke-test` mode.

`nomoat --smoke-test` drives the window through one real chat turn and the public API switch;
packaging/smoke_test.py runs it against a build (see desktop/ui/smoke.py).
"""

from __future__ import annotations

import sys


def main() -> int:
    """Dispatch to the smoke test or to the ordinary command line."""
    argv = sys.argv[1:]
    if argv[:1] == ["--smoke-test"]:
        from desktop.ui.smoke import main as smoke_main

        return smoke_main(argv[1:])
    from desktop.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
