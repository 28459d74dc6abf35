"""Pydantic models for the OpenAPI docs (/docs). Requests are parsed by hand (see inputs.py) so
that errors read as sentences and one endpoint takes JSON or a multipart upload alike."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class InputInfo(BaseModel):
    type: str = Field(description='"image", "table" or "series"')
    shape: list[int] = Field(description="[C, H, W] | [n_features] | [window, n_channels]")
    columns: list[str] | None = None


class ModelInfo(BaseModel):
    name: str
    kind: str = Field(description="model | embedder | denoiser | anomaly_detector | series_anomaly_detector "
                                  "| image_search")
    input: InputInfo
    endpoints: list[str] = Field(description='subset of ["reconstruct", "embed", "score", "search"]')
    threshold: float | None = None
    dataset: str | None = Field(None, description="named data set the model was trained on, if recorded")
    config: dict[str, Any]


class IndexInfo(BaseModel):
    name: str
    size: int
    metric: str
    index: str
    code_dim: int
    model: str | None = Field(None, description="the loaded model the index was built with, if any")


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    index: IndexInfo | None = None


class HealthResponse(BaseModel):
    status: str
    models: list[str]


class Sample(BaseModel):
    id: str
    label: int | None
    image_png: str | None
    input: Any


class SamplesResponse(BaseModel):
    samples: list[Sample]


class ArrayRequest(BaseModel):
    model: str | None = Field(None, description="optional when exactly one loaded model serves the endpoint")
    inputs: Any = Field(description="nested list, batch first: [n, C, H, W] images or [n, n_features] rows "
                                    "(one sample without the batch axis is accepted too)")


class ScoreRequest(BaseModel):
    model: str | None = None
    inputs: Any = Field(None, description="images or table rows, as for /v1/reconstruct")
    series: Any = Field(None, description="series models: [T, C] values (null marks a missing value)")
    timestamps: list[Any] | None = Field(None, description="series models: one ISO time per row")


class SearchRequest(BaseModel):
    model: str | None = Field(None, description="the index's name (or the model it was built with); optional")
    inputs: Any = Field(description="query images, batch first")
    k: int = Field(10, description="neighbours per query")
    images: bool = Field(True, description="include each neighbour's thumbnail (image_png)")


class UploadForm(BaseModel):
    file: bytes = Field(description="PNG or JPEG image (series models: a CSV file)")
    model: str | None = None


class ReconstructResponse(BaseModel):
    model: str
    reconstructions: Any
    errors: list[float] = Field(description="per sample: squared error summed over the sample")
    images_png: list[str] | None = Field(None, description="data URLs, image models only")
    resized: bool


class EmbedResponse(BaseModel):
    model: str
    codes: list[list[float]]
    resized: bool = False


class Event(BaseModel):
    start: int
    end: int
    peak: int
    peak_score: float
    start_time: str | None = None
    end_time: str | None = None


class ScoreResponse(BaseModel):
    model: str
    scores: list[float | None]
    flags: list[bool] | None = Field(None, description="null for models without a threshold")
    threshold: float | None = None
    events: list[Event] | None = Field(None, description="series models only")
    timestamps: list[Any] | None = Field(None, description="series models only")


class Neighbour(BaseModel):
    id: str | int
    distance: float
    label: int | None = None
    image_png: str | None = None


class SearchResult(BaseModel):
    neighbours: list[Neighbour]


class SearchResponse(BaseModel):
    index: str
    results: list[SearchResult]
    resized: bool = False


class ErrorResponse(BaseModel):
    detail: str


def body_doc(json_model: type[BaseModel], *, upload_fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """openapi_extra: the request body as JSON or as a multipart upload."""
    props: dict[str, Any] = {
        "file": {"type": "string", "format": "binary", "description": "PNG or JPEG image"},
        "model": {"type": "string"},
        **(upload_fields or {}),
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": json_model.model_json_schema()},
                "multipart/form-data": {"schema": {"type": "object", "properties": props, "required": ["file"]}},
            },
        }
    }


ERRORS = {
    404: {"model": ErrorResponse, "description": "unknown model, or an endpoint the model cannot serve"},
    413: {"model": ErrorResponse, "description": "request body over the limit"},
    415: {"model": ErrorResponse, "description": "the upload is not an image"},
    422: {"model": ErrorResponse, "description": "wrong shape, NaN, malformed JSON, missing inputs"},
}
