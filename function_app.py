"""The Function App: one FunctionApp, one blueprint per area (see functions/).

Deployed unchanged to Azure Functions; run locally by ``python -m local.host``.
"""

import logging

import azure.functions as func

from functions.admin import bp as admin
from functions.health import bp as health
from functions.install import bp as install
from functions.mail_worker import bp as mail_worker
from functions.sessions import bp as sessions
from functions.settings import bp as settings
from functions.static import bp as static
from functions.sync_workers import bp as sync_workers
from functions.users import bp as users
from functions.webhooks import bp as webhooks
from shared.config import SettingsError, refuse_unresolved_settings
from shared.observability import configure_logging

# Redaction and correlation ids on every log record (and Azure Monitor where configured).
configure_logging()
# An unresolved Key Vault reference (or a secret that cannot be right) stops the app here, with a
# message naming the setting, instead of serving with the reference's text as a secret.
try:
    refuse_unresolved_settings()
except SettingsError as error:
    logging.getLogger("function_app").critical("the app does not start: %s", error)
    raise

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(health)
app.register_functions(install)
app.register_functions(static)
app.register_functions(users)
app.register_functions(mail_worker)
app.register_functions(sessions)
app.register_functions(settings)
app.register_functions(webhooks)
app.register_functions(sync_workers)
app.register_functions(admin)
