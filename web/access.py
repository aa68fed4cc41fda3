"""Who may do what on the web side: protected job types and the full job list need a credential.

Two credentials, one per door:
- the API (JSON, no cookies, exempt from CSRF) takes ``Authorization: Bearer <API_TOKEN>`` and nothing else, so a
  logged-in browser cannot be made to submit a protected job cross-site;
- the pages take the operator login (``/login`` with DASHBOARD_USER / DASHBOARD_PASSWORD), kept in the signed
  session for LOGIN_HOURS and honoured only while its generation is Redis's current one (a logout bumps it, ending
  every earlier session) and the user name and password are those it was made with; its posts carry the CSRF token.
Anyone may submit a public job type and read a public type's job by its (unguessable) id; a protected type's job
is read, canceled and tried again only with the credential, and without it answers as an unknown id would. Code
inside the deployment (the CLI, the clock, Python) enqueues through the engine and is not asked.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from flask import Response, current_app, g, request, session
from redis.exceptions import RedisError
from rq.job import Job

from engine import catalog
from engine.enqueue import Client
from web import ratelimit, state
from web.errors import ApiError, error_response

PROTECTED = "protected"
LOGIN_HOURS = 12
FAILED_LOGIN_COST = 10  # a wrong password counts as this many requests against the client's rate limit
GENERATION_KEY = "stack:operator:generation"  # bumped by a logout: every session made before it ends


# --- the API: a bearer token ------------------------------------------------------------------------------------

def bearer_status() -> str:
    """'valid', 'absent' or 'wrong' for this request's Authorization header against API_TOKEN."""
    header = request.headers.get("Authorization")
    if header is None:
        return "absent"
    token = state.settings().api_token
    scheme, _, given = header.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return "valid"
    return "wrong"


def check_bearer() -> Response | None:
    """A before_request hook for /api: a wrong or unusable Authorization header is a 401 on every route."""
    if not request.path.startswith("/api/") or request.path == "/api/openapi.json":
        return None
    if bearer_status() == "wrong":  # www_authenticate adds the challenge
        return error_response(401, "unauthorized", "The Authorization header is not a valid API token. Send "
                              "Authorization: Bearer <API_TOKEN>, or no Authorization header for public routes.")
    return None


def require_token(what: str) -> None:
    """Raise the API's 401/403 unless the request carries the API token; ``what`` names what needs it."""
    if bearer_status() == "valid":
        return
    if not state.settings().api_token:
        raise ApiError(403, "forbidden", f"{what} needs the API token, and this deployment has none (API_TOKEN is "
                                         "unset): only code inside the deployment (the CLI, the clock) can do it.")
    raise ApiError(401, "unauthorized", f"{what} needs the API token: send Authorization: Bearer <API_TOKEN>.")


def require_token_for(job_type: catalog.JobType) -> None:
    if job_type.access == PROTECTED:
        require_token(f"{job_type.name} is a protected job type; submitting it")


def www_authenticate(response: Response) -> Response:
    """after_request: every API 401 says which scheme it wants."""
    if response.status_code == 401 and request.path.startswith("/api/"):
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


# --- the form: the operator login in the session ----------------------------------------------------------------

def login_configured() -> bool:
    return bool(state.settings().dashboard_password)


def check_login(user: str, password: str) -> bool:
    """DASHBOARD_USER / DASHBOARD_PASSWORD, compared in constant time (both, always)."""
    settings = state.settings()
    if not settings.dashboard_password:
        return False
    same_user = hmac.compare_digest(user.encode(), settings.dashboard_user.encode())
    same_password = hmac.compare_digest(password.encode(), settings.dashboard_password.encode())
    return same_user and same_password


def charge_failed_login() -> None:
    """Count a wrong password as FAILED_LOGIN_COST requests in all (the post itself was charged one already)."""
    current_app.extensions["limiter"].charge(ratelimit.address_group(request.remote_addr), FAILED_LOGIN_COST - 1)


def log_in() -> None:
    """Mark this session as the operator's, under the current login generation, with a fresh CSRF token."""
    session.pop("csrf_token", None)  # Flask-WTF makes a new one: a token seen before the login is worthless after it
    session["operator"] = {"generation": _generation(), "at": int(time.time()), "mark": _credentials_mark()}
    g.operator = True


def log_out() -> None:
    """End every operator session logged in until now, in every browser (a saved cookie included); only the
    operator can: anyone may post a logout, and a visitor's must not end the operator's sessions."""
    if logged_in():
        state.redis().incr(GENERATION_KEY)
    session.pop("operator", None)
    g.operator = False


def logged_in() -> bool:
    """Whether this request comes from a live operator session (checked against Redis once per request)."""
    if "operator" not in g:
        g.operator = _session_is_live()
    return g.operator


def _session_is_live() -> bool:
    marked = session.get("operator")
    if not isinstance(marked, dict) or not login_configured():
        return False
    at, generation = marked.get("at"), marked.get("generation")
    if not isinstance(at, int) or not 0 <= time.time() - at < LOGIN_HOURS * 3600:
        return False
    if not hmac.compare_digest(str(marked.get("mark", "")), _credentials_mark()):
        return False  # logged in under another user name or password: a password change ends it
    try:
        return generation == _generation()
    except RedisError:
        return False  # cannot tell whether it was ended: not logged in (the page still renders)


def _generation() -> int:
    return int(state.redis().get(GENERATION_KEY) or 0)


def _credentials_mark() -> str:
    """A keyed digest of the operator's user name and password: the session holds it, never the password."""
    settings = state.settings()
    secret = current_app.secret_key
    key = secret.encode() if isinstance(secret, str) else bytes(secret or b"")
    text = f"{settings.dashboard_user}\0{settings.dashboard_password}".encode()
    return hmac.new(key, text, hashlib.sha256).hexdigest()[:32]


def may_see(job: Job) -> bool:
    """Whether this request may read, cancel or retry ``job``: a protected type needs the credential of its door
    (the API token on the API, the operator login on the pages). Callers answer a refusal as an unknown id."""
    job_type = catalog.lookup(str(job.meta.get("type", "")))
    if job_type is None or job_type.access != PROTECTED:
        return True
    return bearer_status() == "valid" if request.blueprint == "api" else logged_in()


def may_submit(job_type: catalog.JobType) -> bool:
    """Whether this browser may use the form for ``job_type``."""
    return job_type.access != PROTECTED or logged_in()


# --- who the client is -------------------------------------------------------------------------------------------

def client_key() -> str:
    """The client this request counts as, for per-client state (idempotency keys, running caps): its credential
    when it has one (the API token, or the operator login outside the API), else its rate-limit address group."""
    if bearer_status() == "valid":  # a digest, so the key names the token without holding it
        return "token:" + hashlib.sha256(state.settings().api_token.encode()).hexdigest()[:16]
    if request.blueprint != "api" and logged_in():
        return "operator"
    return "address:" + ratelimit.address_group(request.remote_addr)


def client() -> Client:
    """This request's client as the jobs it submits record it: its key, and whether it showed no credential."""
    key = client_key()
    return Client(key, anonymous=key.startswith("address:"))
