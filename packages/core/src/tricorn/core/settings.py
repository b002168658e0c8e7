"""The settings registry: every option of every tricorn command, declared once.

A `Setting` is a frozen record (name, converter, default, CLI flags, env var, section, help, the
commands it applies to). Each package declares a tuple of them; core declares the shared ones
(`CORE_SETTINGS`) and a `Registry` combines groups::

    registry = Registry(CORE_SETTINGS, WSGI_SETTINGS)      # or: REGISTRY.register(*WSGI_SETTINGS)
    cfg = registry.load("wsgi", sys.argv[1:])               # raises SettingsError
    cfg[KEEP_ALIVE]                                         # -> float (typed by the Setting)
    cfg["keep_alive"]                                       # -> object (by name)

From the records the registry builds the argparse parser of one command, reads the environment, the
config files and ``TRICORN_CMD_ARGS``, validates, and renders ``docs/settings.md``.

Precedence, lowest first (a later source replaces a value, it never appends to it):
  1. the default (`Setting.default`, or `Setting.default_factory(environ)`);
  2. ``[tool.tricorn]`` in ``./pyproject.toml``;
  3. the config file: ``-c/--config`` (or ``TRICORN_CONFIG``), else ``./tricorn.conf.py`` if
     present; a Python file whose module-level names are setting names (Gunicorn's spellings too);
  4. environment variables ``TRICORN_<NAME>``;
  5. ``TRICORN_CMD_ARGS`` (command-line arguments, shlex-split, like ``GUNICORN_CMD_ARGS``);
  6. the command line.

Invariants:
- Every value from every source goes through its setting's converter; a failure is a `SettingsError`
  naming the setting and the source. Converters accept the raw text of the CLI / env and the Python
  values of config files, and are idempotent on their own output.
- The result, `Settings`, is immutable (sequences are tuples) and holds exactly the settings of the
  command it was loaded for, plus where each value came from.
- Names, flags, env vars and config-file aliases are unique within a registry for overlapping
  commands; `Registry.register` refuses a clash.
- Loading has no side effects beyond reading files and executing the config file: warnings
  (unknown names, Gunicorn settings tricorn does not have) are returned in `Settings.warnings` for
  the server to log once logging is set up. Config-file names that are not settings (hooks such as
  ``post_fork``, helpers) are kept as-is in `Settings.extras`.
"""

from __future__ import annotations

import argparse
import builtins
import difflib
import importlib
import ipaddress
import math
import os
import re
import shlex
import sys
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Any, Generic, Literal, NoReturn, TypeVar, overload

from .apploader import AppLoadError, parse_app_spec
from .limits import ParserLimits
from .logs import (
    DEFAULT_ACCESS_LOG_FORMAT,
    ERROR_LOG_FORMATS,
    JSON_FORMAT,
    LOG_LEVELS,
    AccessFormatter,
)

__all__ = [
    "ALL_COMMANDS",
    "CORE_CHECKS",
    "CORE_SETTINGS",
    "REGISTRY",
    "SECTIONS",
    "BindAddress",
    "Registry",
    "Setting",
    "Settings",
    "SettingsError",
    "Switch",
    "bind_addresses",
    "one_of",
    "optional",
    "parse_bind",
    "parser_limits",
    "render_markdown",
    "to_bool",
    "to_float",
    "to_int",
    "to_str",
    "tuple_of",
]

T = TypeVar("T")
Action = Literal["value", "append", "flag"]
Check = Callable[["Settings"], "str | None"]

ALL_COMMANDS: frozenset[str] = frozenset({"wsgi", "asgi", "arbiter"})
"""Command names: ``tricorn-wsgi``, ``tricorn-asgi``, ``tricorn`` (the arbiter)."""

COMMAND_PROGS: Mapping[str, str] = {
    "wsgi": "tricorn-wsgi",
    "asgi": "tricorn-asgi",
    "arbiter": "tricorn",
}

SECTIONS: tuple[str, ...] = (
    "Config",
    "Application",
    "Server socket",
    "Processes",
    "Timeouts",
    "Limits",
    "HTTP",
    "Proxy",
    "TLS",
    "Logging",
)
"""The order of sections in help and docs; other sections follow in registration order."""

ENV_PREFIX = "TRICORN_"
CMD_ARGS_ENV = "TRICORN_CMD_ARGS"
DEFAULT_CONFIG_FILE = "tricorn.conf.py"

_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*\Z")
_FLAG = re.compile(r"-[A-Za-z]\Z|--[a-z0-9][a-z0-9_-]*\Z")


class SettingsError(Exception):
    """A setting could not be read or is invalid. `str(exc)` is a complete message for the user."""

    def __init__(self, message: str, *, setting: str | None = None, source: str | None = None):
        super().__init__(message)
        self.setting = setting
        self.source = source


# --------------------------------------------------------------------------------------------------
# Converters: raw value (CLI/env text, or a config file's Python value) -> typed value. They raise
# ValueError/TypeError with a short reason; the registry adds the setting and the source.


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def to_str(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    raise TypeError(f"expected a string, got {_show(value)}")


def to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "true", "yes", "on", "y", "t"):
            return True
        if text in ("0", "false", "no", "off", "n", "f", ""):
            return False
    raise ValueError(f"expected a boolean (true/false, yes/no, on/off, 1/0), got {_show(value)}")


def _check_range(value: float, lo: float | None, hi: float | None) -> None:
    if lo is not None and value < lo:
        raise ValueError(f"must be at least {lo}, got {value}")
    if hi is not None and value > hi:
        raise ValueError(f"must be at most {hi}, got {value}")


def to_int(*, min: int | None = None, max: int | None = None) -> Callable[[object], int]:
    """An integer converter (decimal text or an int; not a bool, not a float) with bounds."""

    def convert(value: object) -> int:
        if isinstance(value, bool):
            raise TypeError(f"expected an integer, got {_show(value)}")
        if isinstance(value, int):
            number = value
        elif isinstance(value, str):
            try:
                number = int(value.strip(), 10)
            except ValueError:
                raise ValueError(f"expected an integer, got {_show(value)}") from None
        else:
            raise TypeError(f"expected an integer, got {_show(value)}")
        _check_range(number, min, max)
        return number

    return convert


def to_float(*, min: float | None = None, max: float | None = None) -> Callable[[object], float]:
    """A finite number of seconds (text, int or float; not a bool) with bounds."""

    def convert(value: object) -> float:
        if isinstance(value, bool):
            raise TypeError(f"expected a number, got {_show(value)}")
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise ValueError(f"expected a number, got {_show(value)}") from None
        else:
            raise TypeError(f"expected a number, got {_show(value)}")
        if not math.isfinite(number):
            raise ValueError(f"expected a finite number, got {_show(value)}")
        _check_range(number, min, max)
        return number

    return convert


def optional(convert: Callable[[Any], T]) -> Callable[[object], T | None]:
    """`convert`, except that None and "" (an empty env var, say) mean "unset" (None)."""

    def wrapped(value: object) -> T | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return convert(value)

    return wrapped


def one_of(*choices: str) -> Callable[[object], str]:
    """A case-insensitive choice among lower-case `choices`."""

    def convert(value: object) -> str:
        text = to_str(value).lower()
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}; got {_show(value)}")
        return text

    return convert


def tuple_of(
    item: Callable[[Any], T], *, sep: str | None = None
) -> Callable[[object], tuple[T, ...]]:
    """A tuple of `item`s from a list/tuple, a mapping (its items), or a string (split on `sep`,
    or a single item when `sep` is None)."""

    def convert(value: object) -> tuple[T, ...]:
        items: Iterable[object]
        if isinstance(value, str):
            items = [p for p in value.split(sep) if p.strip()] if sep is not None else [value]
        elif isinstance(value, Mapping):
            items = list(value.items())
        elif isinstance(value, (list, tuple)):
            items = value
        else:
            raise TypeError(f"expected a list, got {_show(value)}")
        return tuple(item(v) for v in items)

    return convert


# --------------------------------------------------------------------------------------------------
# Addresses


@dataclass(frozen=True, slots=True)
class BindAddress:
    """A parsed listen address. `host` holds IPv6 addresses without brackets."""

    kind: Literal["tcp", "unix", "fd"]
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "fd":
            return f"fd://{self.fd}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\Z")
DEFAULT_PORT = 8000


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError(f"port must be a number from 0 to 65535, got {text!r}")
    return int(text)


def _host(text: str) -> str:
    try:
        ipaddress.IPv4Address(text)
        return text
    except ValueError:
        pass
    if not _HOSTNAME.match(text):
        raise ValueError(f"{text!r} is not an IPv4 address or a host name")
    return text


def parse_bind(text: str) -> BindAddress:
    """Parse HOST:PORT, HOST (port 8000), [IPv6]:PORT, [IPv6], unix:PATH (or unix://PATH), fd://FD."""
    text = text.strip()
    if text.startswith("unix:"):
        path = text[7:] if text.startswith("unix://") else text[5:]
        if not path:
            raise ValueError(f"{text!r}: unix: needs a path")
        return BindAddress("unix", path=path)
    if text.startswith("fd://"):
        fd = text[5:]
        if not fd.isdigit():
            raise ValueError(f"{text!r}: fd:// needs a file descriptor number")
        return BindAddress("fd", fd=int(fd))
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"{text!r}: missing ']'")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':PORT' after ']'")
        return BindAddress("tcp", host=host, port=_port(rest[1:]) if rest else DEFAULT_PORT)
    if text.count(":") > 1:
        raise ValueError(f"{text!r}: put an IPv6 address in brackets, e.g. [::1]:8000")
    host, colon, port = text.partition(":")
    if not host:
        raise ValueError(f"{text!r}: missing host (0.0.0.0 listens on all IPv4 interfaces)")
    return BindAddress("tcp", host=_host(host), port=_port(port) if colon else DEFAULT_PORT)


def _bind_item(value: object) -> str:
    text = to_str(value)
    parse_bind(text)
    return text


def _host_setting(value: object) -> str:
    text = to_str(value).strip("[]")
    try:
        ipaddress.IPv6Address(text)
        return text
    except ValueError:
        return _host(text)


def _allow_ip(value: object) -> str:
    text = to_str(value)
    if text == "*":
        return text
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address, a CIDR network or '*'") from None
    return text


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def _pair(value: object, sep: str, what: str) -> tuple[str, str]:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        key, val = to_str(value[0]), str(value[1])
    elif isinstance(value, str):
        key, found, val = value.partition(sep)
        key = key.strip()
        if not found:
            raise ValueError(f"expected {what}, got {_show(value)}")
    else:
        raise TypeError(f"expected {what}, got {_show(value)}")
    return key, val


def _header_item(value: object) -> tuple[str, str]:
    name, val = _pair(value, ":", "NAME:VALUE")
    val = val.strip()
    if not _TOKEN.match(name):
        raise ValueError(f"{name!r} is not a valid header name")
    if any(c in val for c in "\r\n\0"):
        raise ValueError(f"header {name!r}: value contains CR, LF or NUL")
    return name, val


def _env_item(value: object) -> tuple[str, str]:
    key, val = _pair(value, "=", "KEY=VALUE")
    if not key or "\0" in key or "\0" in val:
        raise ValueError(f"expected KEY=VALUE, got {_show(value)}")
    return key, val


def _cert_reqs(value: object) -> int:
    names = {"none": 0, "optional": 1, "required": 2}
    if isinstance(value, str) and not value.strip().isdigit():
        key = value.strip().lower().removeprefix("cert_")
        if key not in names:
            raise ValueError(f"expected 0/1/2 or none/optional/required, got {_show(value)}")
        return names[key]
    return to_int(min=0, max=2)(value)  # ssl.CERT_* are ints


def _directory(value: object) -> str:
    path = os.path.abspath(to_str(value))
    if not os.path.isdir(path):
        raise ValueError(f"{path!r} is not a directory")
    return path


def _app_spec(value: object) -> str:
    text = to_str(value)
    try:
        parse_app_spec(text)
    except AppLoadError as exc:
        raise ValueError(str(exc)) from None
    return text


def _access_format(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {_show(value)}")
    if value.strip() == JSON_FORMAT:
        return JSON_FORMAT
    AccessFormatter(value)  # raises ValueError with the reason
    return value


def _root_path(value: object) -> str:
    text = to_str(value).rstrip("/")
    if text and not text.startswith("/"):
        raise ValueError(f"must be empty or start with '/', got {_show(value)}")
    return text


# --------------------------------------------------------------------------------------------------
# The records


@dataclass(frozen=True)
class Switch:
    """An extra flag that stores a constant into a setting (``--no-access-log`` stores None)."""

    flag: str
    value: object
    help: str


@dataclass(frozen=True, eq=False)
class Setting(Generic[T]):
    """One setting. `convert` validates and converts a raw value (see the module docstring)."""

    name: str
    section: str
    convert: Callable[[Any], T]
    default: T
    help: str
    flags: tuple[str, ...] = ()
    action: Action = "value"
    """"value" (one value), "append" (repeatable flag; a list in files), "flag" (--x/--no-x)."""
    metavar: str | None = None
    commands: frozenset[str] = ALL_COMMANDS
    default_factory: Callable[[Mapping[str, str]], T] | None = None
    """Computes the default from the environment (`default` is then only the docs' fallback)."""
    default_doc: str | None = None
    """How the docs show the default, when `default` alone would mislead."""
    aliases: tuple[str, ...] = ()
    """Other names accepted in config files and pyproject (Gunicorn's/Uvicorn's spellings)."""
    switches: tuple[Switch, ...] = ()
    positional: bool = False
    required: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"setting name {self.name!r} is not snake_case")
        if self.action not in ("value", "append", "flag"):
            raise ValueError(f"setting {self.name}: unknown action {self.action!r}")
        for flag in (*self.flags, *(s.flag for s in self.switches)):
            if not _FLAG.match(flag):
                raise ValueError(f"setting {self.name}: bad flag {flag!r}")
        if self.positional and (self.flags or self.action != "value"):
            raise ValueError(f"setting {self.name}: a positional setting has no flags")
        if self.action == "flag" and any(not f.startswith("--") for f in self.flags):
            raise ValueError(f"setting {self.name}: boolean flags need --long names (for --no-x)")
        if not self.commands or not self.help.strip():
            raise ValueError(f"setting {self.name}: needs commands and help")

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def default_value(self, environ: Mapping[str, str]) -> T:
        """The default for this environment (not yet passed through `convert`)."""
        if self.default_factory is not None:
            return self.default_factory(environ)
        return self.default


# --------------------------------------------------------------------------------------------------
# The result


@dataclass(frozen=True, eq=False)
class Settings(Mapping[str, object]):
    """Loaded, validated settings of one command: ``cfg[SETTING]`` (typed) or ``cfg["name"]``."""

    command: str
    data: Mapping[str, object]
    sources: Mapping[str, str]
    """Where each value came from: "default", "command line", "environment variable TRICORN_X"..."""
    extras: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    """Config-file names that are not settings (hooks such as ``post_fork``), as-is."""
    warnings: tuple[str, ...] = ()
    config_file: str | None = None

    @overload
    def __getitem__(self, key: Setting[T]) -> T: ...
    @overload
    def __getitem__(self, key: str) -> object: ...
    def __getitem__(self, key: Setting[Any] | str) -> object:
        name = key if isinstance(key, str) else key.name
        return self.data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def source(self, name: str) -> str:
        return self.sources[name]

    def __repr__(self) -> str:
        return f"Settings({self.command!r}, {dict(self.data)!r})"


# --------------------------------------------------------------------------------------------------
# Gunicorn's names, so a gunicorn.conf.py loads: hooks are kept, settings we lack are warned about.

GUNICORN_HOOKS: frozenset[str] = frozenset(
    """on_starting on_reload when_ready pre_fork post_fork post_worker_init worker_int worker_abort
    pre_exec pre_request post_request child_exit worker_exit nworkers_changed on_exit ssl_context
    on_dirty_starting dirty_post_fork dirty_worker_init dirty_worker_exit""".split()
)

GUNICORN_SETTINGS: frozenset[str] = frozenset(
    """config wsgi_app bind backlog workers worker_class threads worker_connections max_requests
    max_requests_jitter timeout graceful_timeout keepalive limit_request_line limit_request_fields
    limit_request_field_size reload reload_engine reload_extra_files spew check_config print_config
    preload_app sendfile reuse_port chdir daemon raw_env pidfile worker_tmp_dir user group umask
    initgroups tmp_upload_dir secure_scheme_headers forwarded_allow_ips forwarder_headers accesslog
    disable_redirect_access_to_syslog access_log_format errorlog loglevel capture_output
    logger_class logconfig logconfig_dict logconfig_json syslog_addr syslog syslog_prefix
    syslog_facility enable_stdio_inheritance statsd_host dogstatsd_tags statsd_prefix
    enable_backlog_metric proc_name default_proc_name pythonpath paste raw_paste_global_conf
    proxy_protocol proxy_allow_ips keyfile
    certfile ssl_version cert_reqs ca_certs suppress_ragged_eofs do_handshake_on_connect ciphers
    strip_header_spaces permit_unconventional_http_method permit_unconventional_http_version
    casefold_http_method permit_obsolete_folding header_map root_path protocol uwsgi_allow_ips
    http_protocols http2_cleartext http2_max_concurrent_streams http2_initial_window_size
    http2_max_frame_size http2_max_header_list_size asgi_loop asgi_lifespan
    asgi_disconnect_grace_period websocket_max_message_size http_parser dirty_apps dirty_workers
    dirty_timeout dirty_threads dirty_graceful_timeout control_socket control_socket_mode
    control_socket_disable""".split()
)


# --------------------------------------------------------------------------------------------------
# The registry


def _help_text(text: str) -> str:
    return " ".join(text.split())


def _doc_default(setting: Setting[Any]) -> str:
    if setting.default_doc is not None:
        return setting.default_doc
    value = setting.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, tuple):
        if not value:
            return "none"
        return ", ".join(f"`{_doc_item(v)}`" for v in value)
    if value == "":
        return '`""`'
    return f"`{value}`"


def _doc_item(value: object) -> str:
    if isinstance(value, tuple) and len(value) == 2:
        return f"{value[0]}:{value[1]}"
    return str(value)


class _RaisingParser(argparse.ArgumentParser):
    """For TRICORN_CMD_ARGS: report errors as SettingsError instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise SettingsError(f"{CMD_ARGS_ENV}: {message}", source=CMD_ARGS_ENV)


class Registry(Mapping[str, Setting[Any]]):
    """Settings by name. ``Registry(CORE_SETTINGS, MORE)`` or ``registry.register(*MORE)``."""

    def __init__(self, *groups: Iterable[Setting[Any]], checks: Iterable[Check] = ()) -> None:
        self._settings: dict[str, Setting[Any]] = {}
        self._checks: list[Check] = []
        for group in groups:
            self.register(*group)
        for check in checks:
            self.register_check(check)

    # --- contents

    def register(self, *settings: Setting[Any]) -> None:
        """Add settings. Registering the same object again is a no-op; a clash is a ValueError."""
        for setting in settings:
            existing = self._settings.get(setting.name)
            if existing is setting:
                continue
            if existing is not None:
                raise ValueError(f"setting {setting.name!r} is already registered")
            self._check_clashes(setting)
            self._settings[setting.name] = setting

    def register_check(self, check: Check) -> None:
        """Add a whole-settings check: it returns an error message or None."""
        if check not in self._checks:
            self._checks.append(check)

    def _check_clashes(self, new: Setting[Any]) -> None:
        new_flags = {*new.flags, *(s.flag for s in new.switches)}
        new_names = {new.name, *new.aliases}
        for old in self._settings.values():
            if new_names & {old.name, *old.aliases}:
                raise ValueError(f"setting {new.name!r}: name or alias clashes with {old.name!r}")
            if not new.commands & old.commands:
                continue
            clash = new_flags & {*old.flags, *(s.flag for s in old.switches)}
            if clash:
                raise ValueError(f"setting {new.name!r}: flag {sorted(clash)} used by {old.name!r}")
            if new.positional and old.positional:
                raise ValueError(f"setting {new.name!r}: {old.name!r} is already the positional")

    def __getitem__(self, name: str) -> Setting[Any]:
        return self._settings[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._settings)

    def __len__(self) -> int:
        return len(self._settings)

    def sections(self) -> list[str]:
        found = list(dict.fromkeys(s.section for s in self._settings.values()))
        return [s for s in SECTIONS if s in found] + [s for s in found if s not in SECTIONS]

    def for_command(self, command: str) -> tuple[Setting[Any], ...]:
        """The settings of `command`, grouped by section (in `SECTIONS` order)."""
        order = {name: i for i, name in enumerate(self.sections())}
        chosen = [s for s in self._settings.values() if command in s.commands]
        return tuple(sorted(chosen, key=lambda s: order[s.section]))  # stable within a section

    def _by_config_name(self) -> dict[str, Setting[Any]]:
        table: dict[str, Setting[Any]] = {}
        for setting in self._settings.values():
            for name in (setting.name, *setting.aliases):
                table[name] = setting
        return table

    # --- argparse

    def build_parser(
        self, command: str, *, prog: str | None = None, description: str | None = None
    ) -> argparse.ArgumentParser:
        """The parser of `command`. Every option defaults to SUPPRESS, so the namespace holds
        only what was given."""
        return self._build_parser(command, argparse.ArgumentParser, prog, description)

    def _build_parser(
        self,
        command: str,
        parser_class: type[argparse.ArgumentParser],
        prog: str | None,
        description: str | None,
    ) -> argparse.ArgumentParser:
        parser = parser_class(
            prog=prog or COMMAND_PROGS.get(command),
            description=description,
            allow_abbrev=False,
            argument_default=argparse.SUPPRESS,
            add_help=parser_class is not _RaisingParser,  # no --help inside TRICORN_CMD_ARGS
        )
        groups: dict[str, argparse._ArgumentGroup] = {}
        for setting in self.for_command(command):
            if not setting.flags and not setting.positional:
                continue  # config-file-only setting
            group = groups.get(setting.section)
            if group is None:
                group = groups[setting.section] = parser.add_argument_group(setting.section)
            help_text = _help_text(setting.help)
            for switch in setting.switches:
                help_text += f" {switch.flag}: {_help_text(switch.help)}."
            help_text += f" [default: {_doc_default(setting).replace('`', '')}]"
            help_text = help_text.replace("%", "%%")
            if setting.positional:
                group.add_argument(setting.name, nargs="?", metavar=setting.metavar, help=help_text)
            elif setting.action == "flag":
                group.add_argument(
                    *setting.flags,
                    dest=setting.name,
                    action=argparse.BooleanOptionalAction,
                    help=help_text,
                )
            else:
                group.add_argument(
                    *setting.flags,
                    dest=setting.name,
                    action="append" if setting.action == "append" else "store",
                    metavar=setting.metavar,
                    help=help_text,
                )
            for switch in setting.switches:
                group.add_argument(
                    switch.flag,
                    dest=setting.name,
                    action="store_const",
                    const=switch.value,
                    help=argparse.SUPPRESS,
                )
        return parser

    # --- loading

    def make(
        self,
        command: str,
        values: Mapping[str, object] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Defaults plus `values` (converted and validated, source "api"): for embedding and tests.
        Reads no files and no TRICORN_* variables."""
        env = os.environ if environ is None else environ
        builder = _Builder(self, command, env)
        for key, raw in (values or {}).items():
            setting = builder.config_names.get(key.replace("-", "_"))
            if setting is None or command not in setting.commands:
                raise SettingsError(f"{key}: no such setting for {command}", setting=key)
            builder.put(setting, raw, "api")
        return builder.finish(self._checks, require=False)

    def load(
        self,
        command: str,
        argv: Sequence[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        cwd: str | None = None,
        parser: argparse.ArgumentParser | None = None,
    ) -> Settings:
        """Read every source for `command` (see the module docstring) and validate.

        `argv` defaults to ``sys.argv[1:]``; argparse itself exits on ``--help`` or an unknown flag.
        `parser` may be one from `build_parser` with extra arguments (e.g. ``--version``) added.
        Raises `SettingsError`.
        """
        env = os.environ if environ is None else environ
        base = os.getcwd() if cwd is None else cwd
        parser = parser or self.build_parser(command)
        cli = vars(parser.parse_args(argv))
        cmd_args: dict[str, Any] = {}
        if env.get(CMD_ARGS_ENV, "").strip():
            try:
                tokens = shlex.split(env[CMD_ARGS_ENV])
            except ValueError as exc:
                raise SettingsError(f"{CMD_ARGS_ENV}: {exc}", source=CMD_ARGS_ENV) from None
            cmd_parser = self._build_parser(command, _RaisingParser, None, None)
            cmd_args = vars(cmd_parser.parse_args(tokens))

        builder = _Builder(self, command, env)

        # pyproject.toml [tool.tricorn]
        pyproject = os.path.join(base, "pyproject.toml")
        if os.path.isfile(pyproject):
            builder.read_pyproject(pyproject)

        # the config file: named by the sources above it in precedence, else the default file
        config_setting = self._settings.get("config")
        config_path: str | None = None
        if config_setting is not None and command in config_setting.commands:
            for source, raw in (
                ("command line", cli.get("config")),
                (CMD_ARGS_ENV, cmd_args.get("config")),
                (f"environment variable {config_setting.env_var}", env.get(config_setting.env_var)),
            ):
                if raw is not None:
                    config_path = builder.convert(config_setting, raw, source)
                    break
            else:
                from_pyproject = builder.values.get("config")
                if isinstance(from_pyproject, str):
                    config_path = from_pyproject
                elif os.path.isfile(os.path.join(base, DEFAULT_CONFIG_FILE)):
                    config_path = DEFAULT_CONFIG_FILE
        if config_path is not None:
            builder.read_config_file(config_path, base)

        builder.read_environ()
        for key, raw in cmd_args.items():
            builder.put(self._settings[key], raw, CMD_ARGS_ENV)
        for key, raw in cli.items():
            if key in self._settings:
                builder.put(self._settings[key], raw, "command line")
        return builder.finish(self._checks, require=True)


class _Builder:
    """Accumulates values by precedence while loading."""

    def __init__(self, registry: Registry, command: str, environ: Mapping[str, str]) -> None:
        self.registry = registry
        self.command = command
        self.environ = environ
        self.settings = registry.for_command(command)
        self.config_names = registry._by_config_name()
        self.values: dict[str, object] = {}
        self.sources: dict[str, str] = {}
        self.extras: dict[str, object] = {}
        self.warnings: list[str] = []
        self.config_file: str | None = None
        for setting in self.settings:
            source = "default"
            if setting.default_factory is not None:
                source = "default (from the environment)"
            self.put(setting, setting.default_value(environ), source)

    def convert(self, setting: Setting[T], raw: object, source: str) -> T:
        try:
            return setting.convert(raw)
        except (ValueError, TypeError) as exc:
            raise SettingsError(
                f"{source}: {setting.name}: {exc}", setting=setting.name, source=source
            ) from None

    def put(self, setting: Setting[Any], raw: object, source: str) -> None:
        self.values[setting.name] = self.convert(setting, raw, source)
        self.sources[setting.name] = source

    def _apply_named(self, key: str, raw: object, source: str) -> bool:
        """Apply a file entry by setting name or alias; False if the name is not a setting."""
        setting = self.config_names.get(key)
        if setting is None:
            return False
        if self.command in setting.commands:  # others belong to another command: skip quietly
            self.put(setting, raw, source)
        return True

    def read_pyproject(self, path: str) -> None:
        try:
            with open(path, "rb") as f:
                document = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"{path}: {exc}", source=path) from None
        tool = document.get("tool", {})
        table = tool.get("tricorn") if isinstance(tool, dict) else None
        if table is None:
            return
        source = f"{path} [tool.tricorn]"
        if not isinstance(table, dict):
            raise SettingsError(f"{source}: expected a table", source=source)
        for key, raw in table.items():
            name = key.replace("-", "_")
            if not self._apply_named(name, raw, source):
                self.warnings.append(f"{source}: unknown setting {key!r} ignored{self._hint(name)}")

    def read_config_file(self, spec: str, base: str) -> None:
        namespace: Mapping[str, object]
        if spec.startswith("python:"):
            module_name = spec[len("python:") :]
            source = f"config module {module_name}"
            try:
                namespace = vars(importlib.import_module(module_name))
            except Exception as exc:
                raise SettingsError(
                    f"{source}: import failed: {type(exc).__name__}: {exc}", source=source
                ) from exc
        else:
            path = os.path.join(base, spec.removeprefix("file:"))
            source = f"config file {path}"
            namespace = self._exec_file(path, source)
        self.config_file = spec
        for key, raw in namespace.items():
            if key.startswith("_") or isinstance(raw, ModuleType):
                continue
            if key == "config":
                self.warnings.append(f"{source}: 'config' has no effect in a config file")
                continue
            if self._apply_named(key, raw, source):
                continue
            if key in GUNICORN_SETTINGS and key not in GUNICORN_HOOKS:
                self.warnings.append(
                    f"{source}: Gunicorn setting {key!r} is not supported by "
                    f"{COMMAND_PROGS.get(self.command, self.command)}; ignored"
                )
                continue
            if not callable(raw) and key.islower():
                hint = self._hint(key)
                if hint:
                    self.warnings.append(f"{source}: {key!r} is not a setting{hint}")
            self.extras[key] = raw

    @staticmethod
    def _exec_file(path: str, source: str) -> dict[str, object]:
        try:
            with open(path, "rb") as f:
                code = compile(f.read(), path, "exec")
        except OSError as exc:
            raise SettingsError(f"{source}: cannot read: {exc.strerror}", source=source) from None
        except (SyntaxError, ValueError) as exc:
            raise SettingsError(f"{source}: invalid Python: {exc}", source=source) from exc
        namespace: dict[str, object] = {
            "__file__": path,
            "__name__": "__config__",
            "__builtins__": builtins,
        }
        try:
            exec(code, namespace)
        except Exception as exc:
            raise SettingsError(
                f"{source}: raised {type(exc).__name__}: {exc}", source=source
            ) from exc
        return namespace

    def _hint(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self.config_names), n=1, cutoff=0.8)
        return f" (did you mean {close[0]!r}?)" if close else ""

    def read_environ(self) -> None:
        known = {s.env_var for s in self.registry.values()} | {CMD_ARGS_ENV}
        for setting in self.settings:
            raw = self.environ.get(setting.env_var)
            if raw is None:
                continue
            source = f"environment variable {setting.env_var}"
            value: object = raw
            if setting.action == "append":
                try:
                    value = shlex.split(raw)
                except ValueError as exc:
                    raise SettingsError(f"{source}: {exc}", source=source) from None
            self.put(setting, value, source)
        for key in self.environ:
            if key.startswith(ENV_PREFIX) and key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.8)
                hint = f" (did you mean {close[0]}?)" if close else ""
                self.warnings.append(f"environment variable {key} is not a setting{hint}")

    def finish(self, checks: Sequence[Check], *, require: bool) -> Settings:
        if require:
            for setting in self.settings:
                if setting.required and self.values[setting.name] is None:
                    where = setting.metavar or setting.name
                    raise SettingsError(
                        f"{setting.name}: missing {where} (give it on the command line, as "
                        f"{setting.env_var}, or as {setting.name} in the config file)",
                        setting=setting.name,
                    )
        cfg = Settings(
            command=self.command,
            data=MappingProxyType(dict(self.values)),
            sources=MappingProxyType(dict(self.sources)),
            extras=MappingProxyType(dict(self.extras)),
            warnings=tuple(self.warnings),
            config_file=self.config_file,
        )
        for check in checks:
            problem = check(cfg)
            if problem is not None:
                raise SettingsError(problem, source="settings")
        return cfg


# --------------------------------------------------------------------------------------------------
# Core settings


def _default_bind(environ: Mapping[str, str]) -> tuple[str, ...]:
    port = environ.get("PORT", "").strip()
    return (f"0.0.0.0:{port}",) if port else ("127.0.0.1:8000",)


def _default_forwarded(environ: Mapping[str, str]) -> tuple[str, ...]:
    return tuple_of(_allow_ip, sep=",")(environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1"))


_MAX_U31 = 2**31 - 1

CONFIG: Setting[str | None] = Setting(
    name="config",
    section="Config",
    convert=optional(to_str),
    default=None,
    default_doc=f"`./{DEFAULT_CONFIG_FILE}` if it exists",
    flags=("-c", "--config"),
    metavar="CONFIG",
    help="""A Python config file (module-level names are setting names; a gunicorn.conf.py works),
    or python:MODULE. Overrides pyproject.toml [tool.tricorn]; environment variables and the command
    line override it.""",
)

APP: Setting[str | None] = Setting(
    name="app",
    section="Application",
    convert=optional(_app_spec),
    default=None,
    positional=True,
    required=True,
    metavar="MODULE:APP",
    aliases=("wsgi_app",),
    help="""The application: module:attribute (dotted attributes allowed), module:factory() or
    module:factory(literal args), or a bare module (its `application`, else its `app`).""",
)

FACTORY: Setting[bool] = Setting(
    name="factory",
    section="Application",
    convert=to_bool,
    default=False,
    action="flag",
    flags=("--factory",),
    help="Treat APP as a factory: call it without arguments to get the application.",
)

CHDIR: Setting[str | None] = Setting(
    name="chdir",
    section="Application",
    convert=optional(_directory),
    default=None,
    flags=("--chdir",),
    metavar="DIR",
    default_doc="the current directory",
    help="Change to this directory before loading the application (it is added to sys.path).",
)

ENV: Setting[tuple[tuple[str, str], ...]] = Setting(
    name="env",
    section="Application",
    convert=tuple_of(_env_item),
    default=(),
    action="append",
    flags=("-e", "--env"),
    metavar="KEY=VALUE",
    aliases=("raw_env",),
    help="Set an environment variable for the application. Repeatable.",
)

BIND: Setting[tuple[str, ...]] = Setting(
    name="bind",
    section="Server socket",
    convert=tuple_of(_bind_item),
    default=("127.0.0.1:8000",),
    default_factory=_default_bind,
    default_doc="`0.0.0.0:$PORT` if `PORT` is set, else `127.0.0.1:8000`",
    action="append",
    flags=("-b", "--bind"),
    metavar="ADDRESS",
    help="""An address to listen on: HOST:PORT, HOST (port 8000), [IPv6]:PORT, unix:PATH or
    fd://FD. Repeatable. --host/--port, --uds and --fd add addresses; given alone they replace the
    default.""",
)

HOST: Setting[str | None] = Setting(
    name="host",
    section="Server socket",
    convert=optional(_host_setting),
    default=None,
    flags=("--host",),
    metavar="HOST",
    help="Uvicorn's spelling: listen on HOST:PORT (host 127.0.0.1 if only --port is given).",
)

PORT: Setting[int | None] = Setting(
    name="port",
    section="Server socket",
    convert=optional(to_int(min=0, max=65535)),
    default=None,
    flags=("--port",),
    metavar="PORT",
    help="Uvicorn's spelling: the port for --host (8000 if only --host is given; 0 = any port).",
)

UDS: Setting[str | None] = Setting(
    name="uds",
    section="Server socket",
    convert=optional(to_str),
    default=None,
    flags=("--uds",),
    metavar="PATH",
    help="Uvicorn's spelling: also listen on this Unix domain socket (same as --bind unix:PATH).",
)

FD: Setting[int | None] = Setting(
    name="fd",
    section="Server socket",
    convert=optional(to_int(min=0)),
    default=None,
    flags=("--fd",),
    metavar="FD",
    help="Uvicorn's spelling: also listen on this inherited socket (same as --bind fd://FD).",
)

BACKLOG: Setting[int] = Setting(
    name="backlog",
    section="Server socket",
    convert=to_int(min=1, max=_MAX_U31),
    default=2048,
    flags=("--backlog",),
    metavar="INT",
    help="The listen() backlog: connections the kernel queues before they are accepted.",
)

REUSE_PORT: Setting[bool] = Setting(
    name="reuse_port",
    section="Server socket",
    convert=to_bool,
    default=False,
    action="flag",
    flags=("--reuse-port",),
    help="Set SO_REUSEPORT on listening sockets.",
)

TIMEOUT_HEADER_READ: Setting[float] = Setting(
    name="timeout_header_read",
    section="Timeouts",
    convert=to_float(min=0.001),
    default=30.0,
    flags=("--timeout-header-read",),
    metavar="SECONDS",
    help="""Deadline for receiving a whole request head, from the connection (or the previous
    response) on; a client that sends its head too slowly is closed.""",
)

KEEP_ALIVE: Setting[float] = Setting(
    name="keep_alive",
    section="Timeouts",
    convert=to_float(min=0),
    default=5.0,
    flags=("--keep-alive", "--timeout-keep-alive"),
    metavar="SECONDS",
    aliases=("keepalive", "timeout_keep_alive"),
    help="""How long an idle keep-alive connection waits for the next request (0 = close after each
    response). --timeout-keep-alive is Uvicorn's spelling.""",
)

TIMEOUT_BODY_READ: Setting[float] = Setting(
    name="timeout_body_read",
    section="Timeouts",
    convert=to_float(min=0.001),
    default=30.0,
    flags=("--timeout-body-read",),
    metavar="SECONDS",
    help="""While a request body is being read: how long the client may send nothing before the
    connection is closed (an ASGI application then sees http.disconnect; a WSGI application's
    wsgi.input read raises).""",
)

TIMEOUT_WRITE: Setting[float] = Setting(
    name="timeout_write",
    section="Timeouts",
    convert=to_float(min=0.001),
    default=60.0,
    flags=("--timeout-write",),
    metavar="SECONDS",
    help="""How long a client may take none of the response while the server has bytes to send
    (a full socket buffer) before the connection is aborted.""",
)

GRACEFUL_TIMEOUT: Setting[float] = Setting(
    name="graceful_timeout",
    section="Timeouts",
    convert=to_float(min=0),
    default=30.0,
    flags=("--graceful-timeout", "--timeout-graceful-shutdown"),
    metavar="SECONDS",
    aliases=("timeout_graceful_shutdown",),
    help="""On a graceful stop (SIGTERM), how long in-flight requests may run before the process
    stops anyway. --timeout-graceful-shutdown is Uvicorn's spelling.""",
)

LIMIT_REQUEST_LINE: Setting[int] = Setting(
    name="limit_request_line",
    section="Limits",
    convert=to_int(min=0, max=8190),
    default=4094,
    flags=("--limit-request-line",),
    metavar="BYTES",
    help="Longest request line (method, target, version); longer: 414. 0 = the maximum, 8190.",
)

LIMIT_REQUEST_FIELDS: Setting[int] = Setting(
    name="limit_request_fields",
    section="Limits",
    convert=to_int(min=0, max=32768),
    default=100,
    flags=("--limit-request-fields",),
    metavar="INT",
    help="Most header fields in a request; more: 431. 0 = the maximum, 32768.",
)

LIMIT_REQUEST_FIELD_SIZE: Setting[int] = Setting(
    name="limit_request_field_size",
    section="Limits",
    convert=to_int(min=0, max=_MAX_U31),
    default=8190,
    flags=("--limit-request-field-size", "--limit-request-field_size"),
    metavar="BYTES",
    help="""Longest header field line (name, colon, value and CRLF, as Gunicorn counts it); longer:
    431. 0 = the default, 8190.
    --limit-request-field_size is Gunicorn's spelling.""",
)

LIMIT_REQUEST_HEAD: Setting[int] = Setting(
    name="limit_request_head",
    section="Limits",
    convert=to_int(min=64, max=_MAX_U31),
    default=65536,
    flags=("--limit-request-head",),
    metavar="BYTES",
    help="Largest whole request head (request line, all fields, line ends); larger: 431.",
)

LIMIT_REQUEST_BODY: Setting[int] = Setting(
    name="limit_request_body",
    section="Limits",
    convert=to_int(min=0, max=2**63 - 1),
    default=0,
    flags=("--limit-request-body",),
    metavar="BYTES",
    help="Largest request body (Content-Length or chunked total); larger: 413. 0 = no limit.",
)

LIMIT_CHUNK_LINE: Setting[int] = Setting(
    name="limit_chunk_line",
    section="Limits",
    convert=to_int(min=1, max=_MAX_U31),
    default=4096,
    flags=("--limit-chunk-line",),
    metavar="BYTES",
    help="Longest chunk-size line of a chunked body, extensions included; longer: 400.",
)

LIMIT_CHUNK_EXT: Setting[int] = Setting(
    name="limit_chunk_ext",
    section="Limits",
    convert=to_int(min=0, max=_MAX_U31),
    default=65536,
    flags=("--limit-chunk-ext",),
    metavar="BYTES",
    help="Most chunk-extension bytes in one message, summed over its chunks; more: 400.",
)

PERMIT_OBSOLETE_FOLDING: Setting[bool] = Setting(
    name="permit_obsolete_folding",
    section="HTTP",
    convert=to_bool,
    default=False,
    action="flag",
    flags=("--permit-obsolete-folding",),
    help="Accept obsolete line folding in header values (replaced by a space) instead of a 400.",
)

PERMIT_UNCONVENTIONAL_HTTP_METHOD: Setting[bool] = Setting(
    name="permit_unconventional_http_method",
    section="HTTP",
    convert=to_bool,
    default=False,
    action="flag",
    flags=("--permit-unconventional-http-method",),
    help="Accept any token as a method (lower case, very short or long) instead of a 400.",
)

REQUIRE_HOST: Setting[bool] = Setting(
    name="require_host",
    section="HTTP",
    convert=to_bool,
    default=True,
    action="flag",
    flags=("--require-host",),
    help="Answer 400 to an HTTP/1.1 request without a Host header (RFC 9112 section 3.2).",
)

SERVER_HEADER: Setting[bool] = Setting(
    name="server_header",
    section="HTTP",
    convert=to_bool,
    default=True,
    action="flag",
    flags=("--server-header",),
    help="Add 'Server: tricorn' to responses that have no Server header.",
)

DATE_HEADER: Setting[bool] = Setting(
    name="date_header",
    section="HTTP",
    convert=to_bool,
    default=True,
    action="flag",
    flags=("--date-header",),
    help="Add a Date header to responses that have none.",
)

HEADER: Setting[tuple[tuple[str, str], ...]] = Setting(
    name="header",
    section="HTTP",
    convert=tuple_of(_header_item),
    default=(),
    action="append",
    flags=("--header",),
    metavar="NAME:VALUE",
    aliases=("headers",),
    help="A header to add to every response. Repeatable.",
)

FORWARDED_ALLOW_IPS: Setting[tuple[str, ...]] = Setting(
    name="forwarded_allow_ips",
    section="Proxy",
    convert=tuple_of(_allow_ip, sep=","),
    default=("127.0.0.1", "::1"),
    default_factory=_default_forwarded,
    default_doc="`$FORWARDED_ALLOW_IPS` if set, else `127.0.0.1,::1`",
    flags=("--forwarded-allow-ips",),
    metavar="IPS",
    help="""Comma-separated peers (IPs or CIDR networks, or *) trusted to send proxy headers
    (X-Forwarded-For, X-Forwarded-Proto).""",
)

PROXY_HEADERS: Setting[bool] = Setting(
    name="proxy_headers",
    section="Proxy",
    convert=to_bool,
    default=True,
    action="flag",
    flags=("--proxy-headers",),
    help="""Use X-Forwarded-For and X-Forwarded-Proto from trusted peers (--forwarded-allow-ips)
    for the client address and the URL scheme.""",
)

ROOT_PATH: Setting[str] = Setting(
    name="root_path",
    section="Proxy",
    convert=_root_path,
    default="",
    flags=("--root-path",),
    metavar="PATH",
    help="The path prefix the application is mounted under (ASGI root_path, WSGI SCRIPT_NAME).",
)

CERTFILE: Setting[str | None] = Setting(
    name="certfile",
    section="TLS",
    convert=optional(to_str),
    default=None,
    flags=("--certfile", "--ssl-certfile"),
    metavar="FILE",
    help="""TLS certificate chain (PEM); setting it turns TLS on. --ssl-certfile is Uvicorn's
    spelling.""",
)

KEYFILE: Setting[str | None] = Setting(
    name="keyfile",
    section="TLS",
    convert=optional(to_str),
    default=None,
    flags=("--keyfile", "--ssl-keyfile"),
    metavar="FILE",
    help="""TLS private key (PEM), if it is not in the certificate file. --ssl-keyfile is Uvicorn's
    spelling.""",
)

CA_CERTS: Setting[str | None] = Setting(
    name="ca_certs",
    section="TLS",
    convert=optional(to_str),
    default=None,
    flags=("--ca-certs", "--ssl-ca-certs"),
    metavar="FILE",
    help="CA certificates (PEM) to verify client certificates with.",
)

CERT_REQS: Setting[int] = Setting(
    name="cert_reqs",
    section="TLS",
    convert=_cert_reqs,
    default=0,
    flags=("--cert-reqs", "--ssl-cert-reqs"),
    metavar="REQS",
    help="Client certificates: 0/none (not asked), 1/optional (verified if sent), 2/required.",
)

LOG_LEVEL: Setting[str] = Setting(
    name="log_level",
    section="Logging",
    convert=one_of(*LOG_LEVELS),
    default="info",
    flags=("--log-level",),
    metavar="LEVEL",
    aliases=("loglevel",),
    help=f"Error log level: {', '.join(LOG_LEVELS)}.",
)

ERROR_LOGFILE: Setting[str] = Setting(
    name="error_logfile",
    section="Logging",
    convert=to_str,
    default="-",
    flags=("--error-logfile", "--log-file"),
    metavar="FILE",
    aliases=("errorlog",),
    help="""Where the error log goes: a file (reopened on SIGUSR1), - (or /dev/stderr) for
    stderr, or /dev/stdout for stdout (the process's own streams, never reopened).""",
)

ERROR_LOGFORMAT: Setting[str] = Setting(
    name="error_logformat",
    section="Logging",
    convert=one_of(*ERROR_LOG_FORMATS),
    default="text",
    flags=("--error-logformat",),
    metavar="FORMAT",
    aliases=("error_log_format",),
    help="""The error log's format: text (Gunicorn's "[time] [pid] [LEVEL] message" lines), or
    json for one JSON object per line (keys time in ISO 8601 UTC, level, logger, message, pid,
    and exception / stack when present; line breaks and quotes are escaped, so a record is one
    line). With --error-logfile /dev/stdout and --access-logformat json, stdout is JSON lines
    only.""",
)

ACCESS_LOGFILE: Setting[str | None] = Setting(
    name="access_logfile",
    section="Logging",
    convert=optional(to_str),
    default=None,
    default_doc="unset (no access log)",
    flags=("--access-logfile",),
    metavar="FILE",
    aliases=("accesslog",),
    switches=(
        Switch("--access-log", "-", "Uvicorn's spelling, same as --access-logfile -"),
        Switch("--no-access-log", None, "Uvicorn's spelling, turns the access log off"),
    ),
    help="Where the access log goes: a file (reopened on SIGUSR1), or - for stdout.",
)

ACCESS_LOGFORMAT: Setting[str] = Setting(
    name="access_logformat",
    section="Logging",
    convert=_access_format,
    default=DEFAULT_ACCESS_LOG_FORMAT,
    flags=("--access-logformat",),
    metavar="FORMAT",
    aliases=("access_log_format",),
    help="""A Gunicorn access-log format (atoms h l u t r m U q H s B b f a T M D L p {header}i
    {header}o {name}e, as in %(h)s), or json for one JSON object per line (keys time, remote_addr,
    remote_port, method, path, query, protocol, status, bytes, duration_ms, referer, user_agent,
    pid).""",
)

CORE_SETTINGS: tuple[Setting[Any], ...] = (
    CONFIG,
    APP,
    FACTORY,
    CHDIR,
    ENV,
    BIND,
    HOST,
    PORT,
    UDS,
    FD,
    BACKLOG,
    REUSE_PORT,
    TIMEOUT_HEADER_READ,
    TIMEOUT_BODY_READ,
    TIMEOUT_WRITE,
    KEEP_ALIVE,
    GRACEFUL_TIMEOUT,
    LIMIT_REQUEST_LINE,
    LIMIT_REQUEST_FIELDS,
    LIMIT_REQUEST_FIELD_SIZE,
    LIMIT_REQUEST_HEAD,
    LIMIT_REQUEST_BODY,
    LIMIT_CHUNK_LINE,
    LIMIT_CHUNK_EXT,
    PERMIT_OBSOLETE_FOLDING,
    PERMIT_UNCONVENTIONAL_HTTP_METHOD,
    REQUIRE_HOST,
    SERVER_HEADER,
    DATE_HEADER,
    HEADER,
    FORWARDED_ALLOW_IPS,
    PROXY_HEADERS,
    ROOT_PATH,
    CERTFILE,
    KEYFILE,
    CA_CERTS,
    CERT_REQS,
    LOG_LEVEL,
    ERROR_LOGFILE,
    ERROR_LOGFORMAT,
    ACCESS_LOGFILE,
    ACCESS_LOGFORMAT,
)


def _check_tls(cfg: Settings) -> str | None:
    if cfg[CERTFILE] is None:
        for setting in (KEYFILE, CA_CERTS):
            if cfg[setting] is not None:
                return f"{setting.name} is set ({cfg.source(setting.name)}) but certfile is not"
        if cfg[CERT_REQS] != 0:
            return f"cert_reqs is set ({cfg.source('cert_reqs')}) but certfile is not"
    return None


CORE_CHECKS: tuple[Check, ...] = (_check_tls,)

REGISTRY = Registry(CORE_SETTINGS, checks=CORE_CHECKS)
"""The shared registry: core's settings; a package adds its own with ``REGISTRY.register(*S)``."""


# --------------------------------------------------------------------------------------------------
# Derived values


MAX_REQUEST_LINE = 8190
MAX_FIELDS = 32768
DEFAULT_FIELD_SIZE = 8190


def max_field_size(limit_request_field_size: int) -> int:
    """The parser's max_field_size for a --limit-request-field-size. Like Gunicorn's, the setting
    counts a field line with its CRLF; the parser's limit counts it without."""
    return max((limit_request_field_size or DEFAULT_FIELD_SIZE) - 2, 1)


def parser_limits(cfg: Settings) -> ParserLimits:
    """The parser's limits from loaded settings (applying the "0 means ..." rules)."""
    return ParserLimits(
        max_request_line=cfg[LIMIT_REQUEST_LINE] or MAX_REQUEST_LINE,
        max_fields=cfg[LIMIT_REQUEST_FIELDS] or MAX_FIELDS,
        max_field_size=max_field_size(cfg[LIMIT_REQUEST_FIELD_SIZE]),
        max_head_size=cfg[LIMIT_REQUEST_HEAD],
        max_body_size=cfg[LIMIT_REQUEST_BODY],
        max_chunk_line=cfg[LIMIT_CHUNK_LINE],
        max_chunk_ext=cfg[LIMIT_CHUNK_EXT],
        unfold=cfg[PERMIT_OBSOLETE_FOLDING],
        any_method=cfg[PERMIT_UNCONVENTIONAL_HTTP_METHOD],
        host_optional=not cfg[REQUIRE_HOST],
    )


def bind_addresses(cfg: Settings) -> tuple[BindAddress, ...]:
    """Every address to listen on, without duplicates: `bind`, then --host/--port, --uds, --fd.
    When only the latter are given, they replace bind's default."""
    extra: list[BindAddress] = []
    host, port = cfg[HOST], cfg[PORT]
    if host is not None or port is not None:
        port = DEFAULT_PORT if port is None else port
        extra.append(BindAddress("tcp", host=host or "127.0.0.1", port=port))
    uds = cfg[UDS]
    if uds is not None:
        extra.append(BindAddress("unix", path=uds))
    fd = cfg[FD]
    if fd is not None:
        extra.append(BindAddress("fd", fd=fd))
    binds: tuple[str, ...] = cfg[BIND]
    if extra and cfg.source("bind").startswith("default"):
        binds = ()
    return tuple(dict.fromkeys([*(parse_bind(b) for b in binds), *extra]))


# --------------------------------------------------------------------------------------------------
# Docs


# The settings modules of the server packages, which register into REGISTRY when imported. Only
# the reference docs and tests name them all; no package depends on another through this list.
PACKAGE_SETTINGS = ("tricorn.wsgi.settings", "tricorn.asgi.settings", "tricorn.arbiter.settings")


def load_package_settings() -> list[str]:
    """Import the settings modules of every installed tricorn package; the names imported."""
    loaded = []
    for module in PACKAGE_SETTINGS:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise
            continue
        loaded.append(module)
    return loaded


def render_markdown(registry: Registry) -> str:
    """The settings reference, grouped by section (the source of ``docs/settings.md``)."""
    out = [
        "# Settings reference",
        "",
        "<!-- Generated by `python -m tricorn.core.settings --markdown`: edit the `Setting`",
        "     declarations in the packages' settings modules, not this file. -->",
        "",
        "Every setting can be given, from lowest to highest precedence, as a default, in",
        "`[tool.tricorn]` of `./pyproject.toml`, in the config file (`-c FILE`, else",
        "`./tricorn.conf.py`; Python, module-level names; a `gunicorn.conf.py` works), as an",
        "environment variable `TRICORN_<NAME>`, in `TRICORN_CMD_ARGS` (command-line syntax),",
        "and on the command line. In files, repeatable settings take a list; in environment",
        "variables, their values are separated by spaces (shell quoting applies). Booleans",
        "accept true/false, yes/no, on/off, 1/0.",
        "",
        "Commands: `tricorn-wsgi` (wsgi), `tricorn-asgi` (asgi), `tricorn` (arbiter).",
    ]
    by_section: dict[str, list[Setting[Any]]] = {}
    for setting in registry.values():
        by_section.setdefault(setting.section, []).append(setting)
    for section in registry.sections():
        out += ["", f"## {section}"]
        for s in by_section[section]:
            out += ["", f"### `{s.name}`", ""]
            if s.positional:
                out.append(f"- Argument: `{s.metavar or s.name.upper()}`")
            elif s.flags:
                if s.action == "flag":
                    flags = [f"`{f}`, `--no-{f[2:]}`" for f in s.flags]
                else:
                    meta = f" {s.metavar}" if s.metavar else ""
                    flags = [f"`{f}{meta}`" for f in s.flags]
                flags += [f"`{w.flag}` ({w.help})" for w in s.switches]
                repeat = " (repeatable)" if s.action == "append" else ""
                out.append("- Flags: " + ", ".join(flags) + repeat)
            else:
                out.append("- Flags: none (config files only)")
            out.append(f"- Environment: `{s.env_var}`")
            names = ", ".join(f"`{n}`" for n in (s.name, *s.aliases))
            out.append(f"- Config file: {names}")
            out.append(f"- Default: {_doc_default(s)}")
            if s.commands != ALL_COMMANDS:
                out.append("- Commands: " + ", ".join(sorted(s.commands)))
            out += ["", _help_text(s.help)]
    out.append("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tricorn.core.settings", description="Settings registry tools."
    )
    parser.add_argument("--markdown", action="store_true", help="print the settings reference")
    parser.add_argument(
        "--with",
        dest="modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (it registers its settings into REGISTRY); the installed "
        "tricorn packages' settings are always imported",
    )
    args = parser.parse_args(argv)
    load_package_settings()
    for module in args.modules:
        importlib.import_module(module)
    if args.markdown:
        sys.stdout.write(render_markdown(REGISTRY))
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    # Run the imported module's main, so REGISTRY is the one other packages register into.
    from tricorn.core.settings import main as _main

    raise SystemExit(_main())
