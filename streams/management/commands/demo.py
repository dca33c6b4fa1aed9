"""`manage.py demo`: the demo streams and demo logins of the embedded mode (`make run`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from streams.config.demo import DEMO_LOGINS
from streams.config.provisioning import ProvisionError, load_file, provision
from streams.management.commands.provision import write_report

DEMO_FILE = settings.BASE_DIR / "demo" / "streams.yaml"
# What each demo login is for: "demo" sees restricted streams through a group, "admin" sees all.
DEMO_GROUPS = {"demo": ["operators"]}
DEMO_SUPERUSERS = {"admin"}


class Command(BaseCommand):
    help = (
        "Create the demo streams (demo/streams.yaml) and demo logins with known passwords. "
        "Idempotent; refuses to run with DEBUG off."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "demo creates demo logins with known passwords, so it runs only with DEBUG on "
                "(set DEBUG=true for a local demo; never on a server others can reach)"
            )
        try:
            with transaction.atomic():
                # Logins first: the demo file may name them as viewers.
                ensure_demo_logins()
                report = provision(load_file(DEMO_FILE))
        except ProvisionError as error:
            raise CommandError(f"{DEMO_FILE}: " + "; ".join(error.errors)) from None
        write_report(self, report, verbosity=options["verbosity"])
        for username, password, what in DEMO_LOGINS:
            self.stdout.write(f"  login {username} / {password}  ({what})")


def ensure_demo_logins() -> None:
    """Create or repair the DEMO_LOGINS users; writes nothing when they are already right."""
    model = get_user_model()
    for username, password, _ in DEMO_LOGINS:
        superuser = username in DEMO_SUPERUSERS
        user, created = model.objects.get_or_create(**{model.USERNAME_FIELD: username})
        wanted = {"is_active": True, "is_staff": superuser, "is_superuser": superuser}
        changed = created or any(getattr(user, key) != value for key, value in wanted.items())
        for key, value in wanted.items():
            setattr(user, key, value)
        # check_password first: set_password re-hashes with a new salt, a change every run.
        if created or not user.check_password(password):
            user.set_password(password)
            changed = True
        if changed:
            user.save()
        for name in DEMO_GROUPS.get(username, []):
            group, _ = Group.objects.get_or_create(name=name)
            user.groups.add(group)
