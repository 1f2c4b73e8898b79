"""A URLconf with one bare view: the baseline the gate is measured against."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path


def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse(status=204)


urlpatterns = [path("bare", bare)]
