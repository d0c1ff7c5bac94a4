"""The HTTP layer EMQ X 3.0.1's management API runs on (minirest over cowboy), as a
Blueprint of app-wide hooks that app.py registers first: the answer envelopes and the error
answers (with 3.0.1's own in strict mode), routing on raw paths, and credentials checked
before routing, on the listener that serves each route.
"""

import base64
import hashlib
import hmac
import json
import math
import sqlite3
import time
from urllib.parse import unquote

from flask import Blueprint
from flask import current_app
from flask import g
from flask import request
from flask_httpauth import HTTPBasicAuth
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import BaseConverter
from werkzeug.routing import ValidationError
from werkzeug.security import check_password_hash

from database import get_db
from database import NotReady

bp = Blueprint("minirest", __name__)

REALM = "minirest-server"

# The document's error codes.
SUCCESS = 0
UNKNOWN_ERROR = 102
MISSING_PARAM = 107
BAD_PARAM = 108
NOT_JSON = 109
CLIENT_NOT_FOUND = 112
BAD_TOPIC = 115

# ---------------------------------------------------------------------------
# Errors and envelopes: one writer for success, one for errors
# ---------------------------------------------------------------------------


# What EMQ X 3.0.1 answers instead of a clear error, in strict mode: (HTTP status, text).
CRASH = (500, "Internal Error")  # cowboy's answer when a handler crashes
NOT_JSON_TEXT = (400, "Bad Request")
NOT_FOUND_TEXT = (404, "Not found.")
SAME = "same"  # 3.0.1 answers this one as the default mode does


class ApiError(Exception):
    """An answer in the broker's error envelope: {"code": N, "message": ...}.

    `strict` is what 3.0.1 answers instead (CRASH, a text answer, or SAME); by default the
    codes 3.0.1 never sends for the situation decide it (STRICT_BY_CODE).
    """

    def __init__(self, code, message, status=200, strict=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.strict = strict


# Our clear codes where 3.0.1 crashes or answers text: missing and ill-typed parameters
# crash its handlers; a body that is not JSON and a path it has no route for are text.
STRICT_BY_CODE = {MISSING_PARAM: CRASH, BAD_PARAM: CRASH, NOT_JSON: NOT_JSON_TEXT,
                  404: NOT_FOUND_TEXT}


def text_answer(status, text):
    """A text/plain answer, as cowboy sends them."""
    return current_app.response_class(text, status=status, mimetype="text/plain")


def dumps(value):
    """JSON text as the broker writes it: compact, UTF-8, keys in the order given."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _answer(body, status, code):
    """Every JSON answer leaves through here; the request remembers its `code` and the
    answer (compact JSON by construction, which the journal lays out without parsing)."""
    here = g._get_current_object()
    here.answer_code = code
    here.answer = current_app.response_class(body, status=status, mimetype="application/json")
    return here.answer


def _envelope(data_parts, meta):
    """The success envelope around `data` given as JSON text in parts (keys: code, data,
    meta), joined once: a 10,000-row page is copied once, not once per piece added."""
    parts = ['{"code":0']
    if data_parts is not None:
        parts += [',"data":', *data_parts]
    if meta is not None:
        parts.append(f',"meta":{{"page":{meta["page"]},"limit":{meta["limit"]},'
                     f'"count":{meta["count"]}}}')
    parts.append("}")
    return _answer("".join(parts), 200, SUCCESS)


def raw_ok(data_text=None, meta=None):
    """The success envelope around `data` that is already JSON text."""
    return _envelope(None if data_text is None else (data_text,), meta)


def ok(data=None, meta=None):
    """The success envelope around Python data."""
    return raw_ok(None if data is None else dumps(data), meta)


def ok_items(items, meta=None):
    """The success envelope around a list of entities that are already JSON text (with their
    commas as parts of the one join)."""
    listed = [","] * (2 * len(items) - 1) if items else []
    listed[0::2] = items
    return _envelope(("[", *listed, "]"), meta)


def error_response(code, message, status):
    """The error envelope: {"code": N, "message": ...}."""
    return _answer(dumps({"code": code, "message": message}), status, code)


def not_found():
    return ApiError(404, "not found", 404)


@bp.app_errorhandler(ApiError)
def handle_api_error(e):
    if current_app.config["STRICT"]:
        strict = e.strict or STRICT_BY_CODE.get(e.code)
        if isinstance(strict, ApiError):
            e = strict
        elif strict not in (None, SAME):
            return text_answer(*strict)
    return error_response(e.code, e.message, e.status)


HTTP_MESSAGES = {400: "bad request", 404: "not found", 405: "method not allowed",
                 413: "request body too large"}


@bp.app_errorhandler(HTTPException)
def handle_http_error(e):
    """Routing and protocol errors (404, 405, 413, ...) in the same envelope, headers kept.

    Like minirest, the API has no method fallback: a known path with another method is a
    404 (the stand-in's own /_standin paths answer 405, with Allow). A method other than GET
    on the API root or /status is a 400.
    """
    if e.code == 405 and request.path.startswith("/api/v3"):
        if request.path.rstrip("/") == "/api/v3":
            return handle_api_error(ApiError(400, "bad request", 400, strict=NOT_JSON_TEXT))
        return handle_api_error(not_found())
    if e.code == 405 and request.path == "/status":
        return handle_api_error(ApiError(400, "bad request", 400, strict=(400, "Not found.")))
    if current_app.config["STRICT"] and e.code == 404:
        return text_answer(*NOT_FOUND_TEXT)
    response = error_response(e.code, HTTP_MESSAGES.get(e.code, e.name.lower()), e.code)
    for name, value in e.get_response().headers.items():
        if name not in ("Content-Type", "Content-Length"):
            response.headers[name] = value
    return response


def unavailable(message, status=503, retry_after=None):
    """The service cannot do this now (seeding, busy, a damaged or missing file): say why."""
    response = error_response(status, message, status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@bp.app_errorhandler(NotReady)
def handle_not_ready(e):
    return unavailable(str(e), retry_after=1)


@bp.app_errorhandler(sqlite3.Error)
def handle_database_error(e):
    """SQLite's refusals, said plainly: busy (retry), a full disk, a read-only or damaged file."""
    text = str(e)
    if "locked" in text or "busy" in text:
        return unavailable("busy: a long write holds the database; retry", retry_after=1)
    if "full" in text:
        return unavailable(f"the disk is full ({text}): nothing was stored", status=507)
    if "readonly" in text:
        return unavailable(f"the database file is read-only ({text}): nothing was stored")
    if "malformed" in text or "not a database" in text:
        current_app.logger.error("database damaged: %s", text)
        return unavailable(f"the database file is damaged ({text}): restore it, or rebuild it"
                           " with `flask --app app reset`")
    return handle_unexpected(e)


@bp.app_errorhandler(Exception)
def handle_unexpected(e):
    """Last resort: never a traceback in a body. Logged for us, a plain envelope for them."""
    current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(UNKNOWN_ERROR, "internal error", 500)



# ---------------------------------------------------------------------------
# Paths: raw segments, so %2F in a topic or client id survives routing
# ---------------------------------------------------------------------------


class RawPathMiddleware:
    """Route on the undecoded path; the converters below decode each value once.

    WSGI servers hand over PATH_INFO already decoded, which makes `/routes/%2Ftest`
    indistinguishable from `/routes//test`. gunicorn and Werkzeug keep the raw path in
    RAW_URI, so routing sees `%2F` as part of a value, not as a separator.
    """

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if raw:
            path = raw.split("?", 1)[0]
            if "://" in path:  # absolute-form request target
                path = "/" + path.split("://", 1)[1].partition("/")[2]
            path = path[len(environ.get("SCRIPT_NAME", "")):]
        else:
            path = environ.get("PATH_INFO", "").replace("%", "%25")
        # Trailing slashes are optional everywhere: rules are registered without one.
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        environ["PATH_INFO"] = path
        return self.wsgi_app(environ, start_response)


def _decode(value):
    """Percent-decode a path value as UTF-8; text that does not decode matches no route."""
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise ValidationError() from None


class SegmentConverter(BaseConverter):
    """One path segment, percent-decoded (node names: `%40` works as `@`)."""

    def to_python(self, value):
        return _decode(value)


class TailConverter(BaseConverter):
    """The rest of the path, slashes included (topics and client ids), percent-decoded.

    The middleware has dropped a raw trailing slash; an encoded one (`%2F`) is kept.
    """

    regex = ".+"
    part_isolating = False
    weight = 300

    def to_python(self, value):
        return _decode(value)



@bp.record_once
def _route_raw_paths(state):
    state.app.wsgi_app = RawPathMiddleware(state.app.wsgi_app)
    state.app.url_map.converters["seg"] = SegmentConverter
    state.app.url_map.converters["tail"] = TailConverter


# ---------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------

auth = HTTPBasicAuth(realm=REALM)
_verified = {}  # (stored hash, sha256 of the password) -> bool; a changed hash never matches


def password_ok(stored, password):
    """Check a salted hash, remembering the outcome so Basic auth stays cheap per request."""
    key = (stored, hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest())
    if key not in _verified:
        if len(_verified) > 4096:
            _verified.clear()
        _verified[key] = check_password_hash(stored, password)
    return _verified[key]


def json_value(text):
    return None if text is None else json.loads(text)


def _printable(text):
    return all(" " <= c != "\x7f" for c in text)


def kind_of(path):
    """Whose logins a path takes: the listener's in strict mode (None: either kind)."""
    return None if path.startswith("/_standin") else listener()


@auth.verify_password
def verify_password(username, password):
    """An application (AppID/AppSecret, enabled, not expired) or a dashboard user."""
    # NUL and other control characters are refused outright: PBKDF2 pads its key with
    # NULs, so "public\0" would otherwise pass for "public".
    if not username or not _printable(username) or not _printable(password):
        return None
    # Strict mode, as 3.0.1: applications on the management listener, dashboard users on
    # the dashboard's. The stand-in's controls take either.
    kind = kind_of(request.path)
    db = get_db()
    row, user = db.remember(("login", username), lambda db: (
        db.execute("SELECT secret, status, expired FROM apps WHERE app_id = ?",
                   (username,)).fetchone(),
        db.execute("SELECT password FROM users WHERE username = ?", (username,)).fetchone()))
    secret_ok = row is not None and hmac.compare_digest(row["secret"].encode(), password.encode())
    if kind != "dashboard" and secret_ok:
        expired, status = json_value(row["expired"]), json_value(row["status"])
        if not isinstance(status, bool):  # 3.0.1's check crashes on it
            raise ApiError(401, "UNAUTHORIZED", 401, strict=CRASH)
        if not isinstance(expired, (int, float)) or isinstance(expired, bool):
            expired = math.inf
        if status and expired >= time.time():
            return _logged_in(db, kind, {"app_id": username}, expired)
    if kind == "management":
        return None
    if user is not None and password_ok(user["password"], password):
        return _logged_in(db, kind, {"username": username}, math.inf)
    return None


# Where Flask-HTTPAuth keeps the caller it let in (auth.current_user() reads it): set here
# for a remembered login, read by the journal without the proxy.
CALLER = "flask_httpauth_user"


def caller_of(here):
    """The caller a request's globals hold ({"app_id": ...} or {"username": ...}), or {}."""
    return getattr(here, CALLER, None) or {}


LOGINS_KEPT = 1024  # Authorization headers remembered per worker between two changes


def _logins(db):
    """Authorization header and listener -> (caller, valid until): the logins this worker
    has checked since the database last changed (forgotten on any change, in any worker:
    a new password, a disabled application or a deleted user counts from the next request)."""
    return db.remember("logins", lambda db: {})


def _logged_in(db, kind, caller, until):
    logins = _logins(db)
    if len(logins) >= LOGINS_KEPT:
        logins.clear()
    logins[request.environ.get("HTTP_AUTHORIZATION", ""), kind] = caller, until
    return caller


@auth.error_handler
def auth_error(status):
    """401, with minirest's challenge (its spelling: `Realm`). Strict: its bare text body,
    with no Content-Type at all."""
    if current_app.config["STRICT"]:
        response = current_app.response_class(b"UNAUTHORIZED", status=status)
        del response.headers["Content-Type"]
    else:
        response = error_response(status, "UNAUTHORIZED", status)
    response.headers["WWW-Authenticate"] = f'Basic Realm="{REALM}"'
    return response


_require_auth = auth.login_required(lambda: None)
# Paths answered without credentials: the dashboard's login, and the stand-in's readiness
# probe for health checks (GET /status needs none either: it is not under a prefix below).
OPEN_PATHS = {("POST", "/api/v3/auth"), ("GET", "/_standin/ready")}
# Paths that take credentials: the API, and the stand-in's controls, which share its logins.
PROTECTED_PREFIXES = ("/api/v3", "/_standin")


def may_have_body(environ):
    """Whether a request declares a body (a length, or a chunked one); a GET usually not."""
    return bool(environ.get("CONTENT_LENGTH")) or "HTTP_TRANSFER_ENCODING" in environ


@bp.before_app_request
def limit_body_size():
    """413 for a body over the limit, also on routes that would never read it (a chunked
    body, whose length nobody declared, is read here, as far as the limit)."""
    if not may_have_body(request.environ):
        return
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if (request.content_length or 0) > limit:
        raise RequestEntityTooLarge()
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        # Werkzeug stops reading at the limit; a byte left after it means too large.
        if len(request.get_data(cache=True)) >= limit and request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()


@bp.before_app_request
def check_host():
    """Only the Host names of STANDIN_ALLOWED_HOSTS, when set (against DNS rebinding)."""
    allowed = current_app.config["ALLOWED_HOSTS"]
    if allowed and "*" not in allowed:
        host = request.host.rsplit(":", 1)[0].strip("[]").lower()
        if host not in allowed:
            raise ApiError(400, f"host {host!r} is not served here (STANDIN_ALLOWED_HOSTS)", 400)


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@bp.before_app_request
def refuse_cross_site_writes():
    """A page of another site may not write here (cross-site request forgery): a browser
    names the page's origin in every cross-site write, and it must be this server."""
    origin = request.headers.get("Origin")
    if origin is None or request.method in SAFE_METHODS:
        return
    netloc = origin.split("://", 1)[1] if "://" in origin else None
    if netloc is None or netloc.lower() != request.host.lower():
        raise ApiError(403, f"cross-site request refused: Origin {origin} is not this server",
                       403)


@bp.before_app_request
def require_credentials():
    """Basic auth on every protected path, known or not.

    A hook rather than a decorator on each view because credentials come before routing:
    minirest answers an unknown /api/v3 path without credentials with 401, not 404.
    """
    req = request._get_current_object()  # (read once, not through the proxy each time)
    path = req.path
    key = (req.method, path.rstrip("/"))
    # (3.0.1's management listener has no open route: its login is the dashboard's.)
    if not path.startswith(PROTECTED_PREFIXES) or (key in OPEN_PATHS and not (
            key[1] == "/api/v3/auth" and listener() == "management")):
        return None
    header = req.environ.get("HTTP_AUTHORIZATION", "")
    scheme = header.split(" ", 1)[0]
    # Flask-HTTPAuth's get_auth decodes "user:pass" after any scheme (a Bearer token that
    # happens to be base64 of one would log in): only Basic is taken.
    if scheme and scheme.lower() != "basic":
        return auth.auth_error_callback(401)
    if current_app.config["STRICT"] and scheme and not _basic_pair(header):
        return text_answer(*CRASH)  # 3.0.1 crashes on a Basic value it cannot split
    # A header this worker has let in since the last change: the same caller, unless an
    # application's expiry time has passed since.
    # (Flask-HTTPAuth lets OPTIONS through unchecked and names no caller: so does this.)
    known = _logins(get_db()).get((header, kind_of(path)))
    if known is not None and known[1] >= time.time() and req.method != "OPTIONS":
        setattr(g, CALLER, known[0])
        return None
    return _require_auth()


def _basic_pair(header):
    """Does a Basic header hold base64 of "user:password"?"""
    try:
        return b":" in base64.b64decode(header.split(" ", 1)[1], validate=True)
    except (IndexError, ValueError):
        return False


# Strict mode: which routes each of 3.0.1's listeners serves. Production builds serve the
# applications and the dashboard users only on the dashboard's listener, and 3.0.1 GA has
# no clean_acl_cache route at all.
DASHBOARD_ONLY = frozenset({"add_app", "del_app", "list_apps", "lookup_app", "update_app",
                            "auth_user", "change_pwd", "create_user", "delete_user",
                            "list_users", "update_user"})
NOT_IN_GA = frozenset({"clean_acl_cache"})


def listener():
    """The 3.0.1 listener a request reached in strict mode ("management", on PORT, or
    "dashboard", on DASHBOARD_PORT); None in the default mode, where one port is both."""
    if not current_app.config["STRICT"]:
        return None
    sock = request.environ.get("gunicorn.socket")
    port = sock.getsockname()[1] if sock else int(request.environ.get("SERVER_PORT") or 0)
    return "dashboard" if port == current_app.config["DASHBOARD_PORT"] else "management"


def served_here(name):
    """Does this request's listener serve the catalogue route `name`?"""
    kind = listener()
    return kind is None or (name not in NOT_IN_GA and (kind == "dashboard"
                                                       or name not in DASHBOARD_ONLY))


@bp.before_app_request
def serve_this_listeners_routes():
    """Strict mode: a route the listener does not serve answers as a path it has not."""
    kind = listener()
    if kind is None:
        return
    if kind == "dashboard" and request.path == "/status":
        raise not_found()
    if request.path.startswith("/api/v3"):
        if not served_here(request.endpoint):
            raise not_found()
        raw = (request.environ.get("RAW_URI") or request.path).split("?", 1)[0]
        if kind == "dashboard" and raw == "/api/v3":  # its prefix is "/api/v3/"
            return text_answer(400, "Not found.")


@bp.before_app_request
def refuse_undecodable_paths():
    """Text that does not decode matches no route, whatever the method: 404, not 405."""
    if isinstance(request.routing_exception, MethodNotAllowed):
        try:
            unquote(request.environ.get("PATH_INFO", request.path), errors="strict")
        except UnicodeDecodeError:
            raise not_found() from None
