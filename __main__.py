"""The `emqx-standin` command: `python .` in a checkout, the `emqx-standin` script once
installed (the wheel has this file as emqx_standin/main.py).

Installed from the wheel, the project's files sit together in one folder and its modules
import each other by their own names (`app`, `seed`, ...): that folder goes first on the
path, so a module of the same name in the current directory is never taken instead.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    if sys.path[:1] != [HERE]:
        sys.path.insert(0, HERE)
    import app  # first: app.py registers cli.py's commands as it finishes  # noqa: F401
    import cli

    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
