"""Development tools for EHR Bridge; nothing here is deployed."""
