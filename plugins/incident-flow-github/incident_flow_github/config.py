"""The GitHub adapter's settings, read from the environment and never printed.

Environment variables (:meth:`GitHubConfig.from_env`):

``GITHUB_TOKEN`` (required)
    a token allowed to create, comment on and close issues (a fine-grained token with
    "Issues: read and write" on every repository whose issues are linked, or a GitHub App's).
``GITHUB_REPOSITORY`` (required)
    ``owner/repo``: where follow-up issues are created.
``GITHUB_API_URL``
    the REST API's base URL; default ``https://api.github.com`` (GitHub Enterprise Server:
    ``https://<host>/api/v3``; tests point it at a local server).
``GITHUB_SERVER_URL``
    the web address issue links are built on, for references given as ``owner/repo#123``;
    default ``https://github.com``.
``GITHUB_FOLLOWUP_LABELS``
    comma-separated labels put on each follow-up issue; default ``incident-follow-up``.
``GITHUB_OWNER_LOGINS``
    comma-separated ``owner=login`` pairs mapping a follow-up's owner (as incident_flow knows
    them) to a GitHub login, which is then assigned; owners not listed are not assigned.
``INCIDENT_FLOW_URL_TEMPLATE``
    where people read an incident, with ``{incident_id}`` in it
    (``https://incidents.example.com/{incident_id}``): the link back in comments and issues.
``GITHUB_TIMEOUT``
    seconds one API call may take (connecting, sending, waiting for the answer); default 10.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import quote, urlsplit

import attrs

from incident_flow.adapters import Secret, env_secret, env_setting
from incident_flow.errors import AdapterConfigError

__all__ = ["DEFAULT_API_URL", "DEFAULT_LABELS", "DEFAULT_SERVER_URL", "GitHubConfig"]

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SERVER_URL = "https://github.com"
DEFAULT_LABELS = ("incident-follow-up",)
DEFAULT_TIMEOUT = 10.0

_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
_REPO = r"[A-Za-z0-9._-]{1,100}"
REPOSITORY = re.compile(rf"(?P<owner>{_OWNER})/(?P<repo>{_REPO})")
"""``owner/repo`` as GitHub allows the names (matched whole)."""


def _secret(value: Secret | str) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


def _labels(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(item.strip() for item in items if item.strip())


def _logins(value: str | Mapping[str, str]) -> Mapping[str, str]:
    if isinstance(value, Mapping):
        pairs = dict(value)
    else:
        pairs = {}
        for entry in value.split(","):
            if not entry.strip():
                continue
            owner, sep, login = entry.partition("=")
            if not sep or not owner.strip() or not login.strip():
                raise AdapterConfigError(
                    f"GITHUB_OWNER_LOGINS entry {entry.strip()!r} is not owner=login; write "
                    "comma-separated pairs such as alice@example.com=alice,bob=bob-gh",
                    setting="GITHUB_OWNER_LOGINS",
                )
            pairs[owner.strip()] = login.strip().lstrip("@")
    return MappingProxyType(pairs)


def _url(value: str) -> str:
    return value.strip().rstrip("/")


def _optional_template(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return value.strip()


@attrs.frozen
class GitHubConfig:
    """Everything the adapter needs to know about GitHub; see the module docstring.

    The token is kept as a :class:`~incident_flow.adapters.Secret` (a plain string is wrapped
    in one): the config's ``repr`` shows ``***`` in its place.

    Raises:
        AdapterConfigError: a value is malformed (the message names the setting).
    """

    token: Secret = attrs.field(converter=_secret)
    repository: str
    api_url: str = attrs.field(default=DEFAULT_API_URL, converter=_url)
    server_url: str = attrs.field(default=DEFAULT_SERVER_URL, converter=_url)
    followup_labels: tuple[str, ...] = attrs.field(default=DEFAULT_LABELS, converter=_labels)
    owner_logins: Mapping[str, str] = attrs.field(
        factory=lambda: MappingProxyType({}), converter=_logins
    )
    incident_url_template: str | None = attrs.field(default=None, converter=_optional_template)
    timeout: float = DEFAULT_TIMEOUT

    def __attrs_post_init__(self) -> None:
        if not REPOSITORY.fullmatch(self.repository) or self.repository.endswith(("/.", "/..")):
            raise AdapterConfigError(
                f"GITHUB_REPOSITORY must be owner/repo (such as sourcegraph/sourcegraph), not "
                f"{self.repository!r}",
                setting="GITHUB_REPOSITORY",
            )
        for name, url in (("GITHUB_API_URL", self.api_url), ("GITHUB_SERVER_URL", self.server_url)):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise AdapterConfigError(
                    f"{name} must be an http(s) URL such as https://api.github.com, not {url!r}",
                    setting=name,
                )
        if (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, int | float)
            or not self.timeout > 0
        ):
            raise AdapterConfigError(
                f"GITHUB_TIMEOUT must be a number of seconds > 0, not {self.timeout!r}",
                setting="GITHUB_TIMEOUT",
            )
        if self.incident_url_template is not None:
            self.incident_url("INC-1")  # refuses a template that cannot be filled in now

    @property
    def owner(self) -> str:
        """The owner part of :attr:`repository`."""
        return self.repository.partition("/")[0]

    @property
    def repo(self) -> str:
        """The repository part of :attr:`repository`."""
        return self.repository.partition("/")[2]

    def incident_url(self, incident_id: str) -> str | None:
        """Where people read ``incident_id``, from the template; None without one.

        Raises:
            AdapterConfigError: the template names anything but ``{incident_id}``.
        """
        template = self.incident_url_template
        if template is None:
            return None
        if "{incident_id}" not in template:
            raise AdapterConfigError(
                "INCIDENT_FLOW_URL_TEMPLATE must hold the placeholder {incident_id} (such as "
                f"https://incidents.example.com/{{incident_id}}), not {template!r}",
                setting="INCIDENT_FLOW_URL_TEMPLATE",
            )
        try:
            return template.format(incident_id=quote(incident_id, safe=""))
        except (KeyError, IndexError, ValueError, AttributeError) as error:
            raise AdapterConfigError(
                f"INCIDENT_FLOW_URL_TEMPLATE must hold only the placeholder {{incident_id}} "
                f"(such as https://incidents.example.com/{{incident_id}}), not {template!r} "
                f"({type(error).__name__}: {error})",
                setting="INCIDENT_FLOW_URL_TEMPLATE",
            ) from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GitHubConfig:
        """Read the settings from ``environ`` (default ``os.environ``).

        Raises:
            AdapterConfigError: ``GITHUB_TOKEN`` or ``GITHUB_REPOSITORY`` is unset, or a value is
                malformed; the message names the variable, never the token's value.
        """
        token = env_secret(
            "GITHUB_TOKEN",
            environ=environ,
            hint="a token that may create, comment on and close issues",
        )
        repository = env_setting(
            "GITHUB_REPOSITORY",
            environ=environ,
            hint="owner/repo, where follow-up issues are created",
        )
        raw_timeout = env_setting("GITHUB_TIMEOUT", default="", environ=environ)
        timeout = DEFAULT_TIMEOUT
        if raw_timeout:
            try:
                timeout = float(raw_timeout)
            except ValueError:
                raise AdapterConfigError(
                    f"GITHUB_TIMEOUT must be a number of seconds > 0, not {raw_timeout!r}",
                    setting="GITHUB_TIMEOUT",
                ) from None
        return cls(
            token=token,
            repository=repository,
            api_url=env_setting("GITHUB_API_URL", default=DEFAULT_API_URL, environ=environ),
            server_url=env_setting(
                "GITHUB_SERVER_URL", default=DEFAULT_SERVER_URL, environ=environ
            ),
            followup_labels=env_setting(
                "GITHUB_FOLLOWUP_LABELS", default=",".join(DEFAULT_LABELS), environ=environ
            ),
            owner_logins=env_setting("GITHUB_OWNER_LOGINS", default="", environ=environ),
            incident_url_template=env_setting(
                "INCIDENT_FLOW_URL_TEMPLATE", default="", environ=environ
            )
            or None,
            timeout=timeout,
        )
