"""A webhook receiver that checks every delivery with the Standard Webhooks reference library.

Usage: python3 tests/receiver.py SECRET [OTHER_SECRET ...]
Listens on a free loopback port, prints `PORT <n>` first, then one JSON line per request:
{method, path, headers: {webhook-*, content-type}, body, valid, error, validBy}: `valid` and
`error` for the first secret, `validBy` whether each secret given verifies it (as receivers each
holding one of them would see it). Answers 204 when the signature verifies with the first
secret and 401 when it does not.
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

hooks = [Webhook(s) for s in sys.argv[1:]]
print_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def handle_one(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        headers = {k.lower(): v for k, v in self.headers.items()}
        outcomes = []
        for hook in hooks:
            try:
                # json_parse=False: GET callbacks have an empty body and notifications may be XML.
                hook.verify(body, headers, json_parse=False)
                outcomes.append((True, None))
            except WebhookVerificationError as e:
                outcomes.append((False, str(e)))
        valid, error = outcomes[0]
        kept = {k: v for k, v in headers.items() if k.startswith("webhook-") or k == "content-type"}
        line = {"method": self.command, "path": self.path, "headers": kept, "body": body,
                "valid": valid, "error": error, "validBy": [v for v, _ in outcomes]}
        with print_lock:  # one whole line per request, whatever the threads do
            print(json.dumps(line), flush=True)
        self.send_response(204 if valid else 401)
        self.end_headers()

    do_GET = handle_one
    do_POST = handle_one

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"PORT {server.server_address[1]}", flush=True)
server.serve_forever()
