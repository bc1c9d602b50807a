"""Outbound network rules: which addresses EHR Bridge may connect to, checked at connect time."""
