"""docs/api.md cannot drift from the code: every /api/v1 route of the app is documented, and so is every field of
its pydantic request schema (blueprints/api_v1*.py), nested models' fields included.

Where: an endpoint's section is its `### name` heading, else the section whose text first names it in backticks;
a field is documented when its name is in backticks in that section, in the section of an endpoint it names (``The
fields of `placeorder`, plus ...``), or in Conventions (the fields every call has: `apikey`)."""

from __future__ import annotations

import ast
import inspect
import os
import re
import textwrap
import types
import typing

import pytest
from pydantic import BaseModel

from app import create_app

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC_PATH = os.path.join(ROOT, "docs", "api.md")
PREFIX = "/api/v1/"


@pytest.fixture(scope="module")
def routes(tmp_path_factory) -> dict[str, typing.Callable]:
    """/api/v1 path (without the prefix) -> its view function, from an app that is built but not readied."""
    instance = str(tmp_path_factory.mktemp("api-reference"))
    application = create_app({"INSTANCE_PATH": instance, "SETUP_ENVIRONMENT": False, "SAMPLE_CONTRACT": False,
                              "SCHEDULER_ENABLED": False})
    found = {}
    for rule in application.url_map.iter_rules():
        if rule.rule.startswith(PREFIX):
            found[rule.rule[len(PREFIX):].strip("/")] = application.view_functions[rule.endpoint]
    assert len(found) > 30
    return found


def _models_of(func: typing.Callable, depth: int = 0) -> set[type[BaseModel]]:
    """The pydantic models a view hands to a call as its first argument (`parse(PlaceOrder, "orders")`), and
    those of the module-level helpers it calls (two levels: the books' views call `_book`)."""
    func = inspect.unwrap(func)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError):
        return set()
    scope = dict(func.__globals__)
    for name, cell in zip(func.__code__.co_freevars, func.__closure__ or (), strict=True):
        scope[name] = cell.cell_contents
    models: set[type[BaseModel]] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if node.args and isinstance(node.args[0], ast.Name):
            value = scope.get(node.args[0].id)
            if isinstance(value, type) and issubclass(value, BaseModel):
                models.add(value)
        called = scope.get(node.func.id) if isinstance(node.func, ast.Name) else None
        if (depth < 2 and isinstance(called, types.FunctionType) and called is not func
                and called.__module__.startswith("blueprints.api_v1")):
            models |= _models_of(called, depth + 1)
    return models


def _fields(model: type[BaseModel], seen: set | None = None) -> set[str]:
    """Every field a request may carry: the model's (by alias) and its nested models'."""
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    names: set[str] = set()
    for name, field in model.model_fields.items():
        names.add(field.alias or name)
        stack = [field.annotation]
        while stack:
            annotation = stack.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                names |= _fields(annotation, seen)
            stack.extend(typing.get_args(annotation))
    return names


def _request_models(func: typing.Callable) -> set[type[BaseModel]]:
    """The request schemas among a view's models: those it parses (the `Keyed` family, with `apikey`)."""
    return {m for m in _models_of(func) if "apikey" in m.model_fields}


HEADING = re.compile(r"^(#{2,3}) (.+)$", re.MULTILINE)


def _sections(doc: str) -> list[tuple[int, str, str]]:
    """(level, title, text) of every ## and ### section; a ## section's text runs to the next ## heading."""
    heads = list(HEADING.finditer(doc))
    out = []
    for i, m in enumerate(heads):
        level = len(m.group(1))
        end = next((h.start() for h in heads[i + 1:] if len(h.group(1)) <= level), len(doc))
        out.append((level, m.group(2).strip(), doc[m.end():end]))
    return out


def _section_of(endpoint: str, sections: list[tuple[int, str, str]], doc: str) -> str | None:
    """Where `endpoint` is documented: its `### endpoint` section; else its row of a table (`| `endpoint` | ...`);
    else the innermost section that names it in backticks (the books: one section for five endpoints); else the
    paragraph that names `POST /api/v1/endpoint`."""
    for level, title, text in sections:
        if level == 3 and title == endpoint:
            return text
    row = re.search(rf"^\| `{re.escape(endpoint)}` \|.*$", doc, re.MULTILINE)
    if row:
        return row.group(0)
    mention = f"`{endpoint}`"
    named = [text for _level, _title, text in sections if mention in text]
    if named:
        return min(named, key=len)
    # a paragraph (or numbered item) that names `POST /api/v1/endpoint`
    for paragraph in re.split(r"\n\s*\n|\n(?=\d+\. )", doc):
        if re.search(rf"`[^`]*/api/v1/{re.escape(endpoint)}\b[^`]*`", paragraph):
            return paragraph
    return None


def _documented_words(text: str) -> set[str]:
    """The words inside backticks: `price`, `{offset, option_type, ...}`, `/api/v1/instruments?...&format=csv`."""
    return {word for span in re.findall(r"`([^`]+)`", text) for word in re.findall(r"\w+", span)}


@pytest.fixture(scope="module")
def doc() -> str:
    with open(DOC_PATH, encoding="utf-8") as fh:
        return fh.read()


def test_every_route_has_a_request_schema(routes):
    without = [path for path, view in routes.items() if not _request_models(view)]
    assert without == [], "the test cannot find the request schema of these routes"


def test_every_endpoint_and_field_is_documented(routes, doc):
    sections = _sections(doc)
    conventions = next(text for _level, title, text in sections if title == "Conventions")
    missing: list[str] = []
    for path, view in sorted(routes.items()):
        section = _section_of(path, sections, doc)
        if section is None:
            missing.append(f"{path}: no `### {path}` section or table row, nor `{path}` named in one")
            continue
        # the fields every call has (Conventions), and those of an endpoint it refers to ("`placeorder`'s fields")
        related = [section, conventions]
        related += [_section_of(other, sections, doc) or "" for other in routes
                    if other != path and f"`{other}`" in section]
        words = _documented_words("\n".join(related))
        for model in _request_models(view):
            for name in sorted(_fields(model) - words):
                missing.append(f"{path}: field `{name}` ({model.__name__})")
    assert missing == [], "docs/api.md does not document:\n" + "\n".join(missing)


def test_the_readme_links_the_reference_inside_the_repository():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    assert "](docs/api.md" in readme
    for target in re.findall(r"\]\(([^)#\s]+)", readme):
        if not target.startswith(("http://", "https://", "mailto:")):
            assert not target.startswith(".."), f"README links outside the repository: {target}"
            assert os.path.exists(os.path.join(ROOT, target)), f"README links a missing file: {target}"
