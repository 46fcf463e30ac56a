"""The sonolabel command line (see :func:`sonolabel.cli.main.main`)."""
