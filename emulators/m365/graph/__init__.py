"""Microsoft Graph v1.0 surface of the emulator (served under /v1.0)."""
