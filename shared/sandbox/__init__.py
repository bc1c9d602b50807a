"""The built-in sandbox R4 FHIR provider: a resource store on Azure Table Storage and its API."""
