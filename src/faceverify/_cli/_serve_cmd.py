"""``faceverify serve`` (the HTTP service, uvicorn) and ``faceverify clients create|list|revoke``.

Settings come from flags, then ``FACEVERIFY_*`` environment variables, then the
``[serve]`` table of ``--config FILE`` (see ``faceverify._service._config``).
Worker processes get the resolved settings through the environment
(``FACEVERIFY_SERVICE_CONFIG_JSON``) and each loads the models once.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ._main import emit_json


def _config(args: argparse.Namespace) -> Any:
    from .._service._config import ServiceConfig

    flags = {
        name: getattr(args, name, None)
        for name in (
            "database",
            "keys_database",
            "key_file",
            "host",
            "port",
            "workers",
            "pack",
            "cache",
            "profile",
            "threshold",
            "purpose",
            "rate_per_client",
            "rate_per_source",
            "threads",
            "pages",
        )
    }
    if flags.get("cache") is not None:
        flags["cache"] = str(flags["cache"])
    config = ServiceConfig.load(flags, config_file=args.config)
    if not config.database:
        from .._errors import ConfigurationError

        raise ConfigurationError("give --database URL (or $FACEVERIFY_DATABASE, or database in --config)")
    return config


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .._service._app import CONFIG_ENV

    config = _config(args)
    os.environ[CONFIG_ENV] = config.to_json()
    if config.synthetic_frames:
        print(
            "faceverify: WARNING: TEST-ONLY animation checks and replay memory are off: never in production",
            file=sys.stderr,
        )
    if config.fixed_challenges:
        print(
            "faceverify: WARNING: TEST-ONLY fixed challenges are on "
            f"({','.join(config.fixed_challenges)}): never in production",
            file=sys.stderr,
        )
    uvicorn.run(
        "faceverify._service._app:app_from_environment",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        log_level=args.log_level,
        access_log=args.access_log,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        ws="websockets-sansio",
    )
    return 0


def _store(args: argparse.Namespace) -> Any:
    from .._service import ClientStore, open_service_database

    return ClientStore(open_service_database(_config(args).database))


def _client_json(client: Any) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "scopes": sorted(s.value for s in client.scopes),
        "prefixes": list(client.prefixes),
        "created_at": client.created_at.isoformat(),
        "revoked_at": None if client.revoked_at is None else client.revoked_at.isoformat(),
    }


def _cmd_clients_create(args: argparse.Namespace) -> int:
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    client, key = _store(args).create(
        args.client_id, scopes=scopes, prefixes=args.prefix or (), name=args.name
    )
    if args.json:
        emit_json({**_client_json(client), "api_key": key})
    else:
        print(f"client {client.client_id}: scopes {','.join(sorted(s.value for s in client.scopes))}")
        print("API key (shown once, stored only hashed):", file=sys.stderr)
        print(key)
    return 0


def _cmd_clients_list(args: argparse.Namespace) -> int:
    clients = _store(args).list()
    if args.json:
        emit_json({"clients": [_client_json(c) for c in clients]})
    else:
        for c in clients:
            state = f"revoked {c.revoked_at:%Y-%m-%d}" if c.revoked_at else "active"
            prefixes = ",".join(c.prefixes) or "*"
            scopes = ",".join(sorted(s.value for s in c.scopes))
            print(f"{c.client_id:<24} {state:<18} scopes {scopes:<28} subjects {prefixes}")
    return 0


def _cmd_clients_revoke(args: argparse.Namespace) -> int:
    from .._errors import ConfigurationError

    if not _store(args).revoke(args.client_id):
        raise ConfigurationError(f"no active client {args.client_id!r}")
    print(f"client {args.client_id}: key revoked")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--database", default=None, help="the vault's database URL (postgresql://..., sqlite:///...)"
    )
    p.add_argument("--config", default=None, help="a TOML file with a [serve] table")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the HTTP service (app login: enrol, live verify, revoke)")
    _common(serve)
    serve.add_argument("--keys-database", default=None, help="the key store's database URL (kept apart)")
    serve.add_argument("--key-file", default=None, help="master key file (else $FACEVERIFY_MASTER_KEY)")
    serve.add_argument("--host", default=None, help="default 127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default 8080")
    serve.add_argument("--workers", type=int, default=None, help="worker processes (default 1)")
    serve.add_argument("--pack", default=None)
    serve.add_argument("--cache", default=None, help="model cache")
    serve.add_argument("--profile", default=None, help="default app-login (live capture required)")
    serve.add_argument("--threshold", type=float, default=None, help="custom, uncalibrated threshold")
    serve.add_argument("--purpose", default=None, help="the consent purpose this service verifies for")
    serve.add_argument("--rate-per-client", type=int, default=None, help="requests/minute per client")
    serve.add_argument("--rate-per-source", type=int, default=None, help="requests/minute per address")
    serve.add_argument("--threads", type=int, default=None, help="onnxruntime threads per worker")
    serve.add_argument(
        "--no-pages",
        dest="pages",
        action="store_const",
        const=False,
        default=None,
        help="serve no browser pages nor their ceremony routes (docs/browser.md)",
    )
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--access-log", action="store_true", help="log each request line (no bodies)")
    serve.add_argument("--proxy-headers", action="store_true", help="trust X-Forwarded-For from proxies")
    serve.add_argument("--forwarded-allow-ips", default=None, help="proxies trusted for --proxy-headers")
    serve.set_defaults(handler=_cmd_serve)

    clients = sub.add_parser("clients", help="API clients of the HTTP service: create, list, revoke")
    csub = clients.add_subparsers(dest="clients_command", required=True)
    create = csub.add_parser("create", help="a new client and its API key (shown once)")
    create.add_argument("client_id")
    create.add_argument("--scopes", required=True, help="comma-separated: enroll,verify,revoke,admin,metrics")
    create.add_argument("--prefix", action="append", help="restrict to subject ids with this prefix")
    create.add_argument("--name", default=None, help="a human-readable name")
    _common(create)
    create.set_defaults(handler=_cmd_clients_create)
    lst = csub.add_parser("list", help="clients, their scopes and prefixes (never keys)")
    _common(lst)
    lst.set_defaults(handler=_cmd_clients_list)
    rev = csub.add_parser("revoke", help="revoke a client's key at once")
    rev.add_argument("client_id")
    _common(rev)
    rev.set_defaults(handler=_cmd_clients_revoke)
