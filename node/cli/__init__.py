"""The ``mycel`` command line. Heavy imports stay inside commands so ``--help`` is instant."""
