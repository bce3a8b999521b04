"""Thin trigger blueprints: parse and check input, call ``shared``, answer."""
