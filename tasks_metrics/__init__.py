"""Completeness checks, IoU and plate metrics, and overlays for the candidate test."""

from tasks_metrics.checker import Problem, check_completeness
from tasks_metrics.cvat_xml import parse_cvat_xml, to_cvat_xml
from tasks_metrics.generation import render_overlay, render_overlays
from tasks_metrics.metrics import ClassReport, GradeReport, ObjectRef, PlateResult, grade
from tasks_metrics.rest import from_cvat_rest
from tasks_metrics.types import AnnotationFormatError, ImageAnnotations, Shape, TaskAnnotations

__all__ = [
    "AnnotationFormatError",
    "ClassReport",
    "GradeReport",
    "ImageAnnotations",
    "ObjectRef",
    "PlateResult",
    "Problem",
    "Shape",
    "TaskAnnotations",
    "check_completeness",
    "from_cvat_rest",
    "grade",
    "parse_cvat_xml",
    "render_overlay",
    "render_overlays",
    "to_cvat_xml",
]
