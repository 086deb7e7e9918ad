"""The op set: elementwise formulas, structural ops, and the functions users call."""
