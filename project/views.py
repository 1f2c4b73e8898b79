"""The member's home page: the cards every app contributes (settings.PORTAL_DASHBOARD_CARDS)."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from portal.access import AuthedRequest
from portal.panels import dashboard_cards


@require_GET
def dashboard(request: AuthedRequest) -> HttpResponse:
    cards = dashboard_cards(request)
    context = {
        "main_cards": [card for card in cards if card.column == "main"],
        "side_cards": [card for card in cards if card.column == "side"],
    }
    return render(request, "project/dashboard.html", context)
