"""Routes the Functions host in Azure would refuse: it reserves every function route whose
first segment is ``admin`` or ``runtime`` (whatever the routePrefix) and leaves such a
function in error at startup. The local host does not check this, so this test does."""

from tests.security.routes import http_routes


def test_no_route_claims_a_segment_the_functions_host_reserves() -> None:
    reserved = [r.route for r in http_routes() if r.route.split("/")[0].lower() in ("admin", "runtime")]
    assert reserved == []


def test_operator_routes_need_the_admin_key() -> None:
    levels = {r.route: r.auth_level for r in http_routes() if r.route.startswith("ops/")}
    assert levels == {"ops/poison": "admin", "ops/poison/{queue}/replay": "admin"}
