"""Emulator of Microsoft Entra ID sign-in and Microsoft Graph v1.0 (dev only, never deployed)."""
