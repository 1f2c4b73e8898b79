"""allauth hooks: Google login only for the Workspace domain, only for invited members."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialLogin
from allauth.socialaccount.providers.base import AuthProcess
from django.conf import settings
from django.http import HttpRequest
from django.shortcuts import render

from portal.audit import audit_record
from portal.models import User
from portal.services import access_request_create


class InviteOnlyAccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False


def _claims(sociallogin: SocialLogin) -> dict[str, Any]:
    data = sociallogin.account.extra_data or {}
    # The google provider stores the flat ID-token claims; openid_connect nests them.
    nested = data.get("id_token") or data.get("userinfo")
    return nested if isinstance(nested, dict) else data


def _refuse(request: HttpRequest, *, reason: str, email: str, status: int = 403) -> ImmediateHttpResponse:
    audit_record(action="login.google", request=request, refused=True, actor_label=email, reason=reason)
    response = render(request, "portal/login_refused.html", {"reason": reason, "email": email}, status=status)
    return ImmediateHttpResponse(response)


class WorkspaceSocialAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return False

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        """Runs after Google authenticated the person and before any login or sign-up."""
        claims = _claims(sociallogin)
        email = str(claims.get("email", "")).lower()
        domain = settings.GOOGLE_WORKSPACE_DOMAIN
        if sociallogin.state.get("process") == AuthProcess.CONNECT:
            # A member has exactly one Google identity, the one their invitation matched.
            raise _refuse(request, email=email, reason="Linking another Google account isn't supported.")
        if str(claims.get("hd", "")).lower() != domain or not email.endswith(f"@{domain}"):
            raise _refuse(request, email=email, reason=f"Only {domain} Google Workspace accounts may sign in.")
        if claims.get("email_verified") is not True:
            raise _refuse(request, email=email, reason="Google has not verified this e-mail address.")
        user = sociallogin.user if sociallogin.is_existing else User.objects.filter(email=email).first()
        if user is None or user.pk is None:
            access_request_create(email=email, name=str(claims.get("name", "")))
            audit_record(action="login.google", request=request, refused=True, actor_label=email, reason="not invited")
            raise ImmediateHttpResponse(render(request, "portal/access_requested.html", {"email": email}))
        if user.status == User.Status.SUSPENDED or not user.is_active:
            raise _refuse(request, email=email, reason="This account is suspended. Ask an admin.")
