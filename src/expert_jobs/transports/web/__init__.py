"""The web dashboard: server-rendered pages (Jinja2, htmx) over the service, served at ``/ui``.

:func:`create_dashboard` makes the ASGI app; :func:`expert_jobs.transports.http.create_app` mounts
it at ``/ui`` next to the API. Sign-in takes the API's keys; every page and action goes through
:class:`~expert_jobs.service.ExpertJobsService` with the signed-in key's principal. Described in
``docs/dashboard.md``. The front-end library (htmx) is a file of this package: see
``static/VENDORED.md``.
"""

from expert_jobs.transports.web._app import DashboardSettings, create_dashboard
from expert_jobs.transports.web._diagram import lifecycle_svg

__all__ = ["DashboardSettings", "create_dashboard", "lifecycle_svg"]
