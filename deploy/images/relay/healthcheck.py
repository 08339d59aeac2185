"""The relay image's HEALTHCHECK: exit 0 if ``https://127.0.0.1:$PORT/healthz`` answers 200.

The port is ``$RDESK_RELAY_PORT`` (8443 by default), as ``rdesk relay`` reads it. The relay's
certificate is not checked: this asks the process in the same container whether it serves, and
hosts pin the certificate themselves. Standard library only; one line on failure.
"""

import os
import ssl
import sys
import urllib.request

port = int(os.environ.get("RDESK_RELAY_PORT") or 8443)
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
try:
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=context,
                                timeout=4) as answer:
        ok = answer.status == 200
except OSError as exc:
    print(f"rdesk relay healthcheck: {exc}", file=sys.stderr)
    sys.exit(1)
sys.exit(0 if ok else 1)
