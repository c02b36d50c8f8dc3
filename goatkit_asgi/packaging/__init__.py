"""Plugins on disk: manifests, packages, signatures and discovery."""
