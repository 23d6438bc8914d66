"""What the `nomoat` commands do in a terminal; desktop/cli.py only parses arguments."""


class CommandError(Exception):
    """A command failed; the message is the one line the user sees."""
