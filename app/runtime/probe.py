"""``python -m app.runtime.probe``: exit 0 when this machine's service answers 200 on /readyz, else 1.

The container's HEALTHCHECK (and compose's). It asks the address the service itself listens on, from the same
settings (``CHEXNET_HOST``, ``CHEXNET_PORT``, else ``chexnet serve``'s defaults), so ``-e CHEXNET_PORT=9000``
moves the service and its health check together. A wildcard host (``0.0.0.0``, ``::``, empty) is asked on
loopback. Only the standard library is imported: the check runs every 30 s beside the model and must not load
torch. Proxies in the environment are ignored (the request is local).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

from app.runtime.cli import FLAG_DEFAULTS

_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def readiness_url(environ: Mapping[str, str]) -> str:
    """``http://HOST:PORT/readyz`` for the settings in ``environ``; raises ValueError for a port that is no number."""
    host = environ.get("CHEXNET_HOST", str(FLAG_DEFAULTS["host"])).strip()
    host = _WILDCARDS.get(host, host)
    port = int(environ.get("CHEXNET_PORT", str(FLAG_DEFAULTS["port"])))
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/readyz"


def probe_ready(url: str, timeout_s: float = 4.0) -> bool:
    """True when ``url`` answers 200 within ``timeout_s`` seconds; False for any other status or no answer."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):  # urllib.error.URLError/HTTPError are OSErrors; 503 raises HTTPError
        return False


def main() -> int:
    try:
        url = readiness_url(os.environ)
    except ValueError:
        return 1
    return 0 if probe_ready(url) else 1


if __name__ == "__main__":
    sys.exit(main())
