"""Service functions: each command opens the unit of work, applies one engine step, and commits once."""
