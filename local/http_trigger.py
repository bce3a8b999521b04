"""HTTP triggers as the host serves them: ``/{routePrefix}/{route}`` with ASP.NET route
templates, method filtering, auth levels with function keys, and the admin endpoint that
runs a non-HTTP function by hand."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import BaseConverter, Map, Rule
from werkzeug.wrappers import Request, Response

from local.host_config import HostConfig
from local.invocation import Invoker

MAX_REQUEST_BYTES = 100 * 1024 * 1024
MAX_URL_LENGTH = 4096


class _RegexConverter(BaseConverter):
    def __init__(self, url_map: Map, pattern: str) -> None:
        super().__init__(url_map)
        self.regex = pattern


class _SignedIntConverter(BaseConverter):
    regex = r"-?\d+"


_CONSTRAINTS = {
    "int": "sint",
    "long": "sint",
    "guid": r"re('[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}')",
    "alpha": r"re('[A-Za-z]+')",
    "bool": r"re('(?i:true|false)')",
}
_PARAM = re.compile(r"\{(\*{1,2})?([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+)(?:\([^)]*\))?)?(\?)?\}")


def template_to_rules(template: str) -> list[str]:
    """Turn an ASP.NET route template into werkzeug rule strings.

    ``{id}`` -> ``<id>``, ``{id:int}`` -> ``<sint:id>``, ``{*rest}`` -> ``<path:rest>``;
    an optional ``{id?}`` (or catch-all, which may be empty) yields a second rule without it.
    """
    rules = [""]
    for segment in template.strip("/").split("/"):
        match = _PARAM.fullmatch(segment)
        optional = bool(match and (match.group(4) or match.group(1)))

        def convert(m: re.Match[str]) -> str:
            star, name, constraint, _ = m.groups()
            if star:
                return f"<path:{name}>"
            converter = _CONSTRAINTS.get((constraint or "").lower())
            return f"<{converter}:{name}>" if converter else f"<{name}>"

        converted = _PARAM.sub(convert, segment)
        with_segment = [f"{rule}/{converted}" for rule in rules]
        rules = with_segment + rules if optional else with_segment
    return [rule or "/" for rule in rules]


@dataclass(frozen=True)
class HostKeys:
    """Function keys. With no master key configured, auth is off (as under Core Tools)."""

    master: str | None = None
    host: dict[str, str] = field(default_factory=dict)
    functions: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def enforced(self) -> bool:
        return self.master is not None

    def allows(self, auth_level: str, function_name: str, key: str | None) -> bool:
        level = auth_level.lower()
        if level == "anonymous" or not self.enforced:
            return True
        if key is None:
            return False
        if key == self.master:
            return True
        if level == "admin":
            return False
        return key in self.host.values() or key in self.functions.get(function_name, {}).values()


class HttpTriggerApp:
    """A WSGI application serving the HTTP-triggered functions."""

    def __init__(
        self,
        invokers: Iterable[Invoker],
        config: HostConfig,
        keys: HostKeys,
        run_by_hand: Callable[[str, str], bool],
    ) -> None:
        self._keys = keys
        self._run_by_hand = run_by_hand
        self._invokers: dict[str, Invoker] = {}
        prefix = f"/{config.route_prefix}" if config.route_prefix else ""
        rules = [
            Rule("/admin/functions/<name>", endpoint=("admin", None), methods=["POST"]),
            Rule("/admin/host/status", endpoint=("status", None), methods=["GET"]),
        ]
        for invoker in invokers:
            trigger = invoker.spec.trigger
            self._invokers[invoker.spec.name] = invoker
            methods = [m.upper() for m in trigger.get("methods") or []] or None
            route = trigger.get("route") or invoker.spec.name
            for rule in template_to_rules(route):
                path = (prefix + rule) if rule != "/" else (prefix or "/")
                rules.append(Rule(path, endpoint=("function", invoker.spec.name), methods=methods))
        self._map = Map(
            rules,
            strict_slashes=False,
            merge_slashes=False,
            converters={"re": _RegexConverter, "sint": _SignedIntConverter},
        )
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        return self.dispatch(request)(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        if len(request.url) > MAX_URL_LENGTH:
            return Response("URI too long", status=414)
        if (request.content_length or 0) > MAX_REQUEST_BYTES:
            return Response("Request body too large", status=413)
        adapter = self._map.bind_to_environ(request.environ)
        try:
            (kind, name), params = adapter.match()
        except MethodNotAllowed as error:
            return Response("Method not allowed", status=405, headers={"Allow": ", ".join(error.valid_methods or [])})
        except NotFound:
            return Response(status=404)
        except HTTPException as error:
            return error.get_response()
        key = request.headers.get("x-functions-key") or request.args.get("code")
        if kind == "status":
            return Response(json.dumps({"state": "Running"}), mimetype="application/json")
        if kind == "admin":
            return self._admin_invoke(params["name"], request, key)
        invoker = self._invokers[name]
        if not self._keys.allows(invoker.spec.trigger.get("authLevel", "FUNCTION"), name, key):
            return Response(status=401)
        return self._invoke(invoker, request, {k: str(v) for k, v in params.items()})

    def _invoke(self, invoker: Invoker, request: Request, route_params: dict[str, str]) -> Response:
        headers = {k: v for k, v in request.headers.items()}
        http_request = func.HttpRequest(
            method=request.method,
            url=request.url,
            headers=headers,
            params={k: v for k, v in request.args.items()},
            route_params=route_params,
            body=request.get_data(cache=False) or b"",
        )
        try:
            result = invoker.invoke(http_request, reason="This function was programmatically called via the host APIs.")
        except Exception:
            return Response(status=500)
        return _to_response(result)

    def _admin_invoke(self, name: str, request: Request, key: str | None) -> Response:
        if self._keys.enforced and key != self._keys.master:
            return Response(status=401)
        try:
            body = json.loads(request.get_data() or b"{}")
        except ValueError:
            return Response("body must be JSON: {\"input\": \"...\"}", status=400)
        if not self._run_by_hand(name, str(body.get("input", ""))):
            return Response(status=404)
        return Response(status=202)


def _to_response(result: Any) -> Response:
    if isinstance(result, func.HttpResponse):
        response = Response(result.get_body(), status=result.status_code)
        has_type = False
        for name, value in result.headers.items():
            if name.lower() == "content-type":
                has_type = True
            response.headers.add(name, value)
        if not has_type:
            response.headers["Content-Type"] = f"{result.mimetype}; charset={result.charset}"
        return response
    if result is None:
        return Response(status=204)
    if isinstance(result, str | bytes):
        return Response(result, status=200, mimetype="text/plain")
    raise TypeError(f"an HTTP function returned {type(result).__name__}")
