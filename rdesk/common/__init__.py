"""Small helpers every side uses (atomic files, the TLS profile); standard library only."""
