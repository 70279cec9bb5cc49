"""The pieces of the ``recostate`` command; the command itself is :mod:`recostate.cli`."""
