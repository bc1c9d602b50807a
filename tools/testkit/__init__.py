"""The pieces of a local EHR Bridge stack that the tests and ``make bench`` both use.

- :mod:`tools.testkit.data`: where the repository's test data is, failing loudly when a file is
  missing;
- :mod:`tools.testkit.loopback`: threaded HTTP(S) servers on 127.0.0.1 with throwaway TLS
  certificates;
- :mod:`tools.testkit.fake_fhir`: a provider FHIR server (HL7's examples, OAuth, faults);
- :mod:`tools.testkit.devhost`: the dev host in-process on a free port;
- :mod:`tools.testkit.requests`: requests shaped as the functions receive them.

Development only: nothing here is deployed (``.funcignore`` leaves ``tools/`` out). Azurite,
which ``make run`` uses too, is :mod:`tools.azurite`.
"""
