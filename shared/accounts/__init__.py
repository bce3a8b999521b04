"""Install, orgs, members, invitations and join requests (SPEC R1, R2)."""
