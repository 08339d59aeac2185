"""Who may connect and what they may do: passwords, invite codes, login throttling, TLS, the
client-certificate CA and the audit log."""
