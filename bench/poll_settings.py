"""Settings of the poll benchmark: Mlab's, with the URLs of bench/poll_urls.py (a bare baseline view added)."""

from mlabsite.settings.base import *  # noqa: F403

ROOT_URLCONF = "bench.poll_urls"
