"""The CRM (Zoho CRM v8 + Zoho Accounts): OAuth per data centre, the first-party directory
(provisioning), and the records/users/org API."""
