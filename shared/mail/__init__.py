"""E-mails: rendered from templates (English and French, text and HTML), queued in the
outbox, sent through Microsoft Graph by a queue-triggered worker."""
