"""In-memory stand-ins for the storage the product runs on, for fast tests. Each is held to
the same contract as the real thing on Azurite (``tests/integration/test_storage_contract.py``):
a fake that drifted fails there, not silently in the tests that trust it."""
