"""Microsoft Graph v1.0 client (app-only tokens per tenant)."""
