"""The monitoring app's URLs in one namespace: /metrics at the site's root, where Prometheus
looks by default (and the compose file's scrape job points), and the pages under /monitoring/
as monitoring/urls.py lists them."""

from __future__ import annotations

from django.urls import include, path

from monitoring import urls, views

app_name = "monitoring"
urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
    path("monitoring/", include(urls.urlpatterns)),
]
