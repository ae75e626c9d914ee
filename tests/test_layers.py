"""The package's rooms import one way (docs/architecture.md): no module imports from a layer above it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gan_partseg"

# bottom to top; a module may import its own layer and the layers below
LAYERS = [
    {"errors", "labels", "files", "images", "hub", "runtime", "cards", "visualize", "lite0"},
    {"data"},
    {"inversion"},
    {"models"},
    {"evaluation", "convert"},
    {"training"},
    {"jobs"},
    {"cli", "demo", "results"},
]


def room(module: str) -> str:
    """gan_partseg.models.heads -> models; gan_partseg.cli -> cli."""
    return module.split(".")[1]


def layer(module: str) -> int:
    r = room(module)
    for i, rooms in enumerate(LAYERS):
        if r in rooms:
            return i
    raise AssertionError(f"{module}: room {r!r} is in no layer of docs/architecture.md")


def package_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree)  # `if TYPE_CHECKING:` imports serve annotations only
                   if isinstance(block, ast.If) and getattr(block.test, "id", "") == "TYPE_CHECKING"
                   for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("gan_partseg."):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: use absolute imports (gan_partseg....)")
    return found


def test_no_module_imports_from_a_layer_above_it():
    wrong = []
    modules = [p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE]
    assert len(modules) > 40
    for path in modules:
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        me = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        if me.count(".") == 0:
            continue
        for line, target in package_imports(path):
            if layer(target) > layer(me):
                wrong.append(f"{me}:{line} imports {target}")
    assert not wrong, "imports against the layering of docs/architecture.md:\n" + "\n".join(wrong)


def test_every_room_is_documented():
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    for rooms in LAYERS:
        for r in rooms:
            assert f"`{r}" in text, f"docs/architecture.md does not name {r}"
