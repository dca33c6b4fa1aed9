from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import URLPattern, path

from streams.web import metrics, probes, views

urlpatterns: list[URLPattern] = [
    path("", views.stream_list, name="stream-list"),
    path("streams/<slug:slug>/", views.stream_detail, name="stream-detail"),
    path("streams/<slug:slug>/events", views.stream_events, name="stream-events"),
    path("streams/<slug:slug>/range", views.stream_range, name="stream-range"),
    path("streams/<slug:slug>/export.csv", views.stream_export, {"fmt": "csv"}, name="stream-export-csv"),
    path("streams/<slug:slug>/export.json", views.stream_export, {"fmt": "json"}, name="stream-export-json"),
    path("dashboards/", views.dashboard_list, name="dashboard-list"),
    path("dashboards/<slug:slug>/", views.dashboard_detail, name="dashboard-detail"),
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("api/streams/<slug:slug>/points", views.push_points, name="push-points"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    # Django 5 signs out on POST only: the header's sign-out button is a small form.
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
