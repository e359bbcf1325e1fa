"""Fitting commands (fit, landscape, bootstrap, demo) are added here."""


def add_commands(sub) -> None:
    return None
