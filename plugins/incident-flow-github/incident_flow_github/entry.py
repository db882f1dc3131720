"""The entry point's plugin, built from the environment when the entry point is loaded.

An install without ``GITHUB_TOKEN`` or ``GITHUB_REPOSITORY`` fails here with
:class:`~incident_flow.errors.AdapterConfigError`, which the flow's plugin registry reports as a
load failure naming the variable (``flow.plugin_failures``) while the other plugins still load.
"""

from __future__ import annotations

from incident_flow_github.config import GitHubConfig
from incident_flow_github.plugin import GitHubPlugin

__all__ = ["plugin"]

plugin = GitHubPlugin(GitHubConfig.from_env())
"""The plugin registered under the entry point ``github``."""
