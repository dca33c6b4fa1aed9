from django.apps import AppConfig


class StreamsConfig(AppConfig):
    name = "streams"
    verbose_name = "Live streams"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from streams.access.revocation import stream_changed

        # Stream rows kept for subscribes (streams/access/revocation.py) go stale on a change.
        post_save.connect(stream_changed, sender="streams.Stream", dispatch_uid="streams.rows.save")
        post_delete.connect(stream_changed, sender="streams.Stream", dispatch_uid="streams.rows.delete")
