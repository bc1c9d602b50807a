"""Sandbox failures, each mapped by the sandbox API to one OperationOutcome status."""

from __future__ import annotations


class SandboxError(Exception):
    """Base class of sandbox failures."""


class ResourceNotFound(SandboxError):
    """No resource of that type with that id (404)."""

    def __init__(self, resource_type: str, resource_id: str) -> None:
        super().__init__(f"{resource_type}/{resource_id} is not known")
        self.resource_type = resource_type
        self.resource_id = resource_id


class UnsupportedType(SandboxError):
    """A resource type the sandbox does not keep (404, code not-supported)."""

    def __init__(self, resource_type: str) -> None:
        super().__init__(f"the sandbox does not keep {resource_type[:64]} resources")
        self.resource_type = resource_type


class InvalidResource(SandboxError):
    """A resource the sandbox will not store; ``element`` names the offending element (422)."""

    def __init__(self, element: str, message: str) -> None:
        super().__init__(f"{element}: {message}")
        self.element = element
        self.message = message


class UnsupportedSearch(SandboxError):
    """A search parameter, modifier or value the sandbox cannot honour (400)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


class LayoutOutdated(SandboxError):
    """The sandbox's tables hold data in an earlier version's layout (503 until migrated)."""
