"""The Tokens page: a member's own API tokens and calendar feeds. A new secret is shown once,
in the response to the POST that made it, and never again."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from gpus.models import Token
from gpus.tokens import token_create, token_revoke
from portal.access import AuthedRequest, refuse
from portal.audit import AuditContext

FEED_KINDS = [(Token.Kind.FEED, "My bookings"), (Token.Kind.TEAM_FEED, "Everyone's bookings")]
FEED_KIND_VALUES = (Token.Kind.FEED, Token.Kind.TEAM_FEED)
KIND_MISSING = "Pick what the token is for: the API, your bookings' feed or everyone's bookings' feed."


class TokenCreateForm(forms.Form):
    kind = forms.ChoiceField(
        choices=Token.Kind.choices,
        widget=forms.HiddenInput,
        error_messages={
            "required": KIND_MISSING,
            "invalid_choice": KIND_MISSING,
        },
    )
    name = forms.CharField(
        max_length=60,
        help_text="Where you use it, to tell your tokens apart (“laptop script”, “Google Calendar”).",
        error_messages={"required": "Give the token a name, such as “laptop script”."},
    )

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the token a name, such as “laptop script”.")
        return name


def get_token_for_user(request: AuthedRequest, pk: int) -> Token:
    """A member's own token; anyone else's is refused (and the refusal audited)."""
    token = get_object_or_404(Token, pk=pk)
    if token.user_id != request.user.pk:
        raise refuse(request, "token.denied", target=token)
    return token


def _created(token: Token, secret: str) -> dict[str, Any]:
    shown: dict[str, Any] = {"token": token, "secret": secret, "api_url": f"{settings.PORTAL_URL}/gpus/api/v1"}
    if token.kind != Token.Kind.API:
        feed_url = settings.PORTAL_URL + reverse("gpus:feed", kwargs={"secret": secret})
        shown |= {"feed_url": feed_url, "webcal_url": "webcal://" + feed_url.split("://", 1)[1]}
    return shown


def _page(request: AuthedRequest, form: TokenCreateForm, created: dict[str, Any] | None = None) -> HttpResponse:
    bound_kind = form.data.get("kind") if form.is_bound else None
    context = {
        "tokens": list(Token.objects.filter(user=request.user)),
        "api_form": form if bound_kind == Token.Kind.API else TokenCreateForm(initial={"kind": Token.Kind.API}),
        # A refused kind (only a hand-made request sends one) shows its error by the feed choice.
        "feed_form": form if form.is_bound and bound_kind != Token.Kind.API else TokenCreateForm(),
        "feed_kinds": FEED_KINDS,
        "feed_kind": bound_kind if bound_kind in FEED_KIND_VALUES else Token.Kind.FEED,
        "created": created,
    }
    response = render(request, "gpus/token_list.html", context, status=400 if form.errors else 200)
    if created:
        response["Cache-Control"] = "no-store"  # the secret must not stay in any cache
    return response


@require_http_methods(["GET", "POST"])
def token_list(request: AuthedRequest) -> HttpResponse:
    """The member's tokens; POST makes one and shows its secret this once."""
    form = TokenCreateForm(request.POST if request.method == "POST" else None)
    if not (form.is_bound and form.is_valid()):
        return _page(request, form)
    token, secret = token_create(
        user=request.user,
        kind=form.cleaned_data["kind"],
        name=form.cleaned_data["name"],
        actor=request.user,
        context=AuditContext.of(request),
    )
    return _page(request, TokenCreateForm(), _created(token, secret))


@require_POST
def token_revoke_view(request: AuthedRequest, pk: int) -> HttpResponse:
    token = get_token_for_user(request, pk)
    token_revoke(token=token, actor=request.user, context=AuditContext.of(request))
    messages.success(request, f"Revoked “{token.name}” ({token.prefix}…): it no longer opens anything.")
    return redirect("gpus:tokens")
