"""Model registry: register, list, create and rebuild models by name or import path."""

from .registry import (
    create_model,
    factory_path,
    is_model,
    is_plain_data,
    list_models,
    model_entrypoint,
    model_tags,
    register_model,
    resolve_factory,
    unregister_model,
)

__all__ = [
    "register_model",
    "unregister_model",
    "create_model",
    "list_models",
    "is_model",
    "model_entrypoint",
    "model_tags",
    "resolve_factory",
    "factory_path",
    "is_plain_data",
]
