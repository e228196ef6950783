"""Model registry: name -> builder, weight sources and preprocessing contract."""

from ftedge.models.registry import (
    BuiltModel,
    ModelSpec,
    available_models,
    build_model,
    get_spec,
    preprocessing_contract,
)

__all__ = ["BuiltModel", "ModelSpec", "available_models", "build_model", "get_spec",
           "preprocessing_contract"]
