"""The key that signs the OpenID Connect handshake cookie, the same in every server process.

Between leaving for the identity provider and coming back, Authlib keeps the sign-in's state,
nonce and PKCE verifier in a signed cookie. A key made per process made the callback fail
whenever it reached another process than the one that started the sign-in: a second uvicorn
worker, another replica behind a load balancer, or the same server restarted in between. The key
is therefore derived from one partnership secret, taken from (first found):

1. ``SGLEDGER_WEB_SECRET`` in the environment: what several machines behind one address must
   share (from the deployment's secret store; at least 32 characters, never in a file that is
   committed);
2. ``DATA_DIR/web-secret``: created once with 32 random bytes, mode 0600, by whichever process
   starts first (an atomic link, so two workers starting together agree), and refused like any
   state file if it is open to other users.

The cookie key is an HMAC of that secret with this purpose, so the secret itself signs nothing
and can serve other purposes later without one use weakening another.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from ledger.private_files import FILE_MODE, private_directory, private_file

SECRET_ENV = "SGLEDGER_WEB_SECRET"
SECRET_FILE = "web-secret"
MIN_SECRET = 32
PURPOSE = b"sgledger web: OIDC handshake cookie v1"


class SecretTooShort(ValueError):
    """``SGLEDGER_WEB_SECRET`` is set but too short to sign anything with."""


def handshake_key(data_dir: Path) -> str:
    """The handshake cookie's signing key for the partnership whose state is in ``data_dir``."""
    configured = os.environ.get(SECRET_ENV)
    if configured is not None:
        if len(configured) < MIN_SECRET:
            raise SecretTooShort(
                f"{SECRET_ENV} is {len(configured)} characters; give at least {MIN_SECRET} "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        secret = configured.encode("utf-8")
    else:
        secret = _stored_secret(data_dir)
    return hmac.new(secret, PURPOSE, hashlib.sha256).hexdigest()


def _stored_secret(data_dir: Path) -> bytes:
    path = private_file(private_directory(data_dir) / SECRET_FILE)
    if not path.exists():
        draft = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as out:
                out.write(secrets.token_hex(32) + "\n")
            os.link(draft, path)  # fails if another process got there first: then use theirs
        except FileExistsError:
            pass
        finally:
            draft.unlink(missing_ok=True)
    return path.read_text(encoding="ascii").strip().encode("ascii")
