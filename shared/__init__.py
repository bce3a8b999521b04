"""The product: the Office 365 integration of a CRM, as Azure Functions.

This package never imports ``azure.functions``: the triggers in ``functions/`` do.
"""
