"""StoredRollupMark.ahead_ms / behind_ms: how far each stream's stored point times stray from
their rows' last ids, computed from the rows stored before (a range read bounds last_ms by them)."""

from django.db import migrations, models


def compute(apps, schema_editor):
    # Self-contained: the same rule as rollups.refresh_spans, over every stream with a mark
    # (every stream with stored rows has one since migration 0009's backfill).
    from django.db.models import F, Max

    StoredBatch = apps.get_model("streams", "StoredBatch")
    StoredRollupMark = apps.get_model("streams", "StoredRollupMark")
    for mark in StoredRollupMark.objects.all():
        spans = StoredBatch.objects.filter(stream_id=mark.stream_id).aggregate(
            ahead=Max(F("t_max") * 1000 - F("last_ms")), behind=Max(F("last_ms") - F("t_min") * 1000)
        )
        if spans["ahead"] is None:
            continue  # no rows: unknown, the next write sets them from its rows
        mark.ahead_ms = int(-(-spans["ahead"] // 1)) + 1
        mark.behind_ms = int(-(-spans["behind"] // 1)) + 1
        mark.save(update_fields=["ahead_ms", "behind_ms"])


class Migration(migrations.Migration):
    dependencies = [
        ("streams", "0009_rollups"),
    ]

    operations = [
        migrations.AddField(
            model_name="storedrollupmark",
            name="ahead_ms",
            field=models.BigIntegerField(null=True),
        ),
        migrations.AddField(
            model_name="storedrollupmark",
            name="behind_ms",
            field=models.BigIntegerField(null=True),
        ),
        migrations.RunPython(compute, migrations.RunPython.noop, elidable=True),
    ]
