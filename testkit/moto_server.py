"""A throwaway S3 endpoint for tests: one moto S3 server on 127.0.0.1, on a free port.

Owns the server process only: the caller picks the Python that has `moto[server]` 5.x
installed (measured on moto 5.2.6, werkzeug 3.1.9) and any credentials; moto accepts any
signed request, so give the client a dummy key pair (unsigned requests get 403s).

Usage: spawn `python testkit/moto_server.py [BUCKET...]` with stdin a pipe and stdout a pipe.
It creates each BUCKET (object_store cannot create buckets) and, once it accepts
connections, prints exactly one line, `PORT <n>`, to stdout; the endpoint is then
`http://127.0.0.1:<n>` (path-style, plain HTTP). It exits when its stdin reaches end of file,
so a test that drops the pipe, or dies, never leaves it running; SIGTERM ends it too (the
default action). Request logs are off; errors go to stderr. A bad BUCKET exits 1 before
`PORT` is printed.

The server handles one request at a time (werkzeug without threads). moto checks a
conditional PUT (`If-None-Match: *`, `If-Match: <etag>`) and then stores the object with no
lock between the two, so the stock threaded `moto_server` lets concurrent conditional PUTs
of one key both succeed. Measured: N client processes race one fresh key per round; a bad
round is one with more than one winner (none had zero):

    mode          bodies  N x rounds  bad rounds, If-None-Match  bad rounds, If-Match
    threaded      512 B   16 x 300    1                          0
    threaded      6 MiB    8 x 20     3, rerun 2                 8, rerun 8
    non-threaded  512 B   16 x 300    0                          0
    non-threaded  6 MiB    8 x 20     0                          0

(Bodies over moto's ~5 MiB in-memory buffer spill to a temporary file, widening the window.)
Losers get 412 PreconditionFailed, as S3 answers.
"""

import logging
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server
from werkzeug.test import Client

# moto checks that a request is signed, not the signature; the scope names the service.
SIGNED = (
    "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/s3/aws4_request,"
    " SignedHeaders=host, Signature=0"
)


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = DomainDispatcherApplication(create_backend_app)
    for bucket in sys.argv[1:]:
        reply = Client(app).put(f"/{bucket}", headers={"Authorization": SIGNED})
        if reply.status_code != 200:
            sys.exit(f"creating bucket {bucket!r}: {reply.status_code} {reply.text}")
    # Binds and listens here: connections queue from now on, before serving starts.
    server = make_server(
        "127.0.0.1", 0, app, threaded=False, request_handler=MotoRequestHandler
    )
    print(f"PORT {server.server_port}", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.buffer.read()  # returns at end of file: the spawning test is gone


if __name__ == "__main__":
    main()
