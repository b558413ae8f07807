"""`marketpipe query`: reads the processors' query endpoints (any worker; it forwards to the owner) and shows
them as tables (marketpipe/query_view.py), or with ``--json`` the endpoint's body as it is.

With MARKETPIPE_PROCESSOR_QUERY_TOKEN set (the token the workers check) it sends `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


def query_url(args: argparse.Namespace) -> str:
    venue, _, ident = args.key.partition(":")
    if not ident:
        raise SystemExit(f"key {args.key!r}: expected venue:market or venue:account")
    q = urllib.parse.quote
    base = args.url.rstrip("/")
    params: dict[str, str] = {}
    if args.what == "book":
        path = f"/books/{q(venue)}/{q(ident)}"
        if args.depth:
            params["depth"] = str(args.depth)
    elif args.what == "top":
        path = f"/books/{q(venue)}/{q(ident)}/top"
    elif args.what == "candles":
        path = f"/candles/{q(venue)}/{q(ident)}/{q(args.interval)}"
        if args.limit:
            params["limit"] = str(args.limit)
    else:
        path = f"/accounts/{q(venue)}/{q(ident)}/{args.what}"
        if args.what == "fills" and args.limit:
            params["limit"] = str(args.limit)
        if args.what == "orders" and getattr(args, "status", None):
            params["status"] = args.status
    return base + path + (("?" + urllib.parse.urlencode(params)) if params else "")


def main(args: argparse.Namespace) -> int:
    url = query_url(args)
    token = os.environ.get("MARKETPIPE_PROCESSOR_QUERY_TOKEN")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            body = json.loads(resp.read())
            status = resp.status
    except urllib.error.HTTPError as exc:
        body, status = json.loads(exc.read() or b"{}"), exc.code
    except OSError as exc:
        print(f"cannot reach the processors at {args.url}: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "json", False):
        print(json.dumps(body, indent=2))
    else:
        from rich.console import Console

        from marketpipe.query_view import render

        render(args.what, body, Console(highlight=False))
    return 0 if status == 200 else 1
