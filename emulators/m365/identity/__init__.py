"""Microsoft identity platform (Entra ID) v2.0 endpoints of the emulator."""
