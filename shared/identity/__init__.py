"""Who is asking: Microsoft sign-in (MSAL), id token checks, sessions and CSRF."""
