"""The one exception type lowdose raises for bad input.

It subclasses ``ValueError`` so callers that expect the standard type still catch it; the CLI turns
it into a one-line message (which names the file and the fix) and a non-zero exit.
"""


class LowdoseInputError(ValueError):
    """Bad user input: a file, a value or a configuration that lowdose cannot use."""
