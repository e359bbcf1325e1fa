"""Pythia access: record reader, built-in setups, one Pythia run, and the sentinel self-check."""
