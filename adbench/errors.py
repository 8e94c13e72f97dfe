"""The one exception type for bad user input, shared by every stage of adbench."""


class AdbenchError(Exception):
    """An error caused by what a user asked for; its message says what is wrong and how to fix it.

    The CLI prints the message on one line and exits with status 2; the library raises it.
    """
