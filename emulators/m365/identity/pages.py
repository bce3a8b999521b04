"""The HTML the identity endpoints show a person: sign-in, consent, form_post, errors."""

from __future__ import annotations

from markupsafe import escape

STYLE = """
body{font-family:'Segoe UI',system-ui,sans-serif;background:#f2f2f2;margin:0}
.card{background:#fff;max-width:440px;margin:8vh auto;padding:44px;box-shadow:0 2px 6px rgba(0,0,0,.2)}
h1{font-size:24px;font-weight:600;margin:16px 0} label{display:block;margin-top:16px;font-size:15px}
input[type=email],input[type=password]{width:100%;padding:6px 0;border:0;border-bottom:1px solid #666;font-size:15px}
button{margin-top:24px;padding:6px 24px;font-size:15px;border:0;background:#0067b8;color:#fff;cursor:pointer}
button.secondary{background:#ccc;color:#000;margin-right:8px} .error{color:#e81123;margin-top:12px}
.brand{font-weight:600;color:#737373} ul{padding-left:20px} .muted{color:#666;font-size:13px}
"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><main class='card'><div class='brand'>Microsoft (emulated)</div>{body}</main></body></html>")


def sign_in(action: str, flow_id: str, error: str | None = None, login_hint: str = "", purpose: str = "") -> str:
    message = f"<p class='error' role='alert'>{escape(error)}</p>" if error else ""
    return _page("Sign in to your account", f"""
<h1>Sign in</h1>{f"<p class='muted'>{escape(purpose)}</p>" if purpose else ""}{message}
<form method="post" action="{escape(action)}">
<input type="hidden" name="flow" value="{escape(flow_id)}">
<label for="email">Email</label><input id="email" name="email" type="email" autocomplete="username" value="{escape(login_hint)}" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>""")


def consent(action: str, flow_id: str, app_name: str, user_upn: str, permissions: list[str], for_organization: bool) -> str:
    items = "".join(f"<li>{escape(p)}</li>" for p in permissions)
    scope_note = ("<p><strong>Consent on behalf of your organization.</strong> Accepting grants these permissions to the "
                  "application for every user in your organization.</p>") if for_organization else ""
    return _page("Permissions requested", f"""
<h1>Permissions requested</h1>
<p><strong>{escape(app_name)}</strong> would like to access your organization's resources. Signed in as {escape(user_upn)}.</p>
<p>This app would like to:</p><ul>{items}</ul>{scope_note}
<form method="post" action="{escape(action)}">
<input type="hidden" name="flow" value="{escape(flow_id)}">
<button class="secondary" type="submit" name="decision" value="cancel">Cancel</button>
<button type="submit" name="decision" value="accept">Accept</button>
</form>""")


def form_post(redirect_uri: str, fields: dict[str, str]) -> str:
    inputs = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items() if v is not None)
    return (f"<!doctype html><html><head><title>Working...</title></head><body onload='document.forms[0].submit()'>"
            f"<form method='POST' name='hiddenform' action='{escape(redirect_uri)}'>{inputs}"
            "<noscript><p>Script is disabled. Click Submit to continue.</p><input type='submit' value='Submit'></noscript>"
            "</form></body></html>")


def error(code: str, description: str) -> str:
    return _page("Sign in error", f"<h1>Sorry, but we're having trouble signing you in.</h1>"
                 f"<p class='error' role='alert'>{escape(description)}</p><p class='muted'>Error: {escape(code)}</p>")
