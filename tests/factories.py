from __future__ import annotations

import factory
from allauth.account.models import EmailAddress

from portal.models import Quota, SSHKey, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"member{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@corp.example")
    status = User.Status.ACTIVE
    first_name = factory.LazyAttribute(lambda u: u.username.capitalize())

    @factory.post_generation
    def with_quota(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create and extracted is not False:
            Quota.objects.get_or_create(user=self, defaults=Quota.team_defaults())
            EmailAddress.objects.get_or_create(
                user=self, email=self.email, defaults={"verified": True, "primary": True}
            )


class SSHKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SSHKey

    user = factory.SubFactory(UserFactory)
    name = "laptop"
    key_type = "ssh-ed25519"
    bits = 256
    fingerprint = factory.Sequence(lambda n: f"SHA256:fake{n:040d}")
    public_key = factory.Sequence(lambda n: f"ssh-ed25519 AAAAfake{n} laptop")
