"""The ``faceverify`` command."""
