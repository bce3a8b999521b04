"""Timer: delete the sessions that have ended (an anonymous one after an hour: it holds a
PKCE verifier and nonce; a signed-in one after eight)."""

import logging

import azure.functions as func

from shared.observability import correlated, invocation, new_correlation_id
from shared.wiring import get_services

bp = func.Blueprint()
log = logging.getLogger("functions.sessions")


@bp.timer_trigger(arg_name="timer", schedule="0 */15 * * * *", run_on_startup=False, use_monitor=True)
def purge_sessions(timer: func.TimerRequest, context: func.Context) -> None:
    with invocation(context), correlated(new_correlation_id("sessions")):
        purged = get_services().sessions.purge_expired()
        log.info("ended sessions purged: %d", purged)
