"""Tests for the feed kinds, one module per kind."""
