"""Subcommands of the ``nasbench`` CLI, one module each (see :mod:`nasbench_harness.cli`)."""
