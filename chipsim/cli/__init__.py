"""Command line: parse, call, print. No simulation logic lives here."""
