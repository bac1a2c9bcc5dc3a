"""Children that answer Ctrl-C whatever the test run inherited."""

from __future__ import annotations

import signal


def answer_ctrl_c() -> None:
    """`preexec_fn` of a child a test interrupts with SIGINT: the default action back.

    A test run started in the background of a non-interactive shell inherits SIGINT
    ignored, and so do its children; Python then installs no KeyboardInterrupt handler
    and the Ctrl-C a test sends is lost (the child runs to its end). From a terminal the
    child would have the default.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
