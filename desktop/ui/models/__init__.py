"""Thin Qt item models over plain lists from desktop.core."""
