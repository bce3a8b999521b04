"""HTTP mechanics shared by the Graph and CRM clients (no vendor knowledge)."""
