"""The Function App: one FunctionApp, one blueprint per area (see functions/).

Deployed unchanged to Azure Functions; run locally by ``python -m local.host``.
"""

import azure.functions as func

from functions.health import bp as health
from functions.install import bp as install
from functions.mail_worker import bp as mail_worker
from functions.static import bp as static
from functions.users import bp as users

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(health)
app.register_functions(install)
app.register_functions(static)
app.register_functions(users)
app.register_functions(mail_worker)
