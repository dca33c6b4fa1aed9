"""`manage.py provision FILE`: create or update streams and dashboards from a YAML or JSON file."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from streams.config.provisioning import ProvisionError, ProvisionReport, load_file, provision


class Command(BaseCommand):
    help = (
        "Create or update streams and dashboards from a YAML or JSON file "
        "({'streams': [...], 'dashboards': [...]}, either or both, or a bare list of streams). "
        "Idempotent; all or nothing: a file with any error changes nothing. "
        "Streams not in the file are left alone (never deleted)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="a .yaml/.yml or .json file (other names: detected by content)")
        parser.add_argument("--dry-run", action="store_true", help="check and report, write nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["file"]
        try:
            report = provision(load_file(path), dry_run=options["dry_run"])
        except ProvisionError as error:
            count = len(error.errors)
            lines = "\n".join(f"  {line}" for line in error.errors)
            raise CommandError(
                f"{path}: {count} error{'s' if count != 1 else ''}, nothing changed:\n{lines}"
            ) from None
        write_report(self, report, verbosity=options["verbosity"], dry_run=options["dry_run"])


def write_report(
    command: BaseCommand, report: ProvisionReport, *, verbosity: int = 1, dry_run: bool = False
) -> None:
    """Print what a provision run did (shared with `manage.py demo`)."""
    if verbosity >= 1:
        for label, slugs in (
            ("created", report.created),
            ("updated", report.updated),
            ("created dashboard", report.dashboards_created),
            ("updated dashboard", report.dashboards_updated),
        ):
            for slug in slugs:
                command.stdout.write(f"  {label} {slug}")
        if report.groups_created:
            command.stdout.write(f"  created groups: {', '.join(report.groups_created)}")
    suffix = " (dry run: nothing written)" if dry_run else ""
    command.stdout.write(command.style.SUCCESS(f"Streams: {report.summary()}{suffix}"))
    if report.has_dashboards:
        command.stdout.write(command.style.SUCCESS(f"Dashboards: {report.dashboard_summary()}{suffix}"))
