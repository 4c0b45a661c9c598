"""Plain-Python domain: errors, commands and rules that know nothing of storage or transport."""
