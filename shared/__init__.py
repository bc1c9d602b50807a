"""EHR Bridge core: rules and services with no dependency on azure.functions."""
