"""Benchmarks that print figures. They never assert timings; tests do not run them."""
