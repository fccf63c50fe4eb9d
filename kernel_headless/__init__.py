"""The headless kernel: runs cells inside Pyodide and turns what they do into nbformat outputs."""
