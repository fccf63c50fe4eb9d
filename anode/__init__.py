"""The ``anode`` command: the one entry point that puts relay and kernels together."""
