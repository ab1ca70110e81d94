"""The package layout: platform/ is a source root, not a package shadowing the stdlib."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_stdlib_platform_still_works_from_repo_root():
    out = subprocess.run([sys.executable, "-c", "import platform; print(platform.system())"],
                         cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() in ("Linux", "Darwin", "Windows")


def test_no_init_in_platform_dir():
    assert not (REPO / "platform" / "__init__.py").exists()


def test_subpackages_map_onto_one_import_name():
    import lakeray
    import lakeray.actors.registry
    import lakeray.jobs

    assert lakeray.actors.registry.__file__.startswith(str(REPO / "actors"))
    assert lakeray.jobs.__file__.startswith(str(REPO / "jobs"))
    assert set(lakeray.__all__) >= {"connect", "NotFound", "PermissionDenied", "LakerayError"}


def test_modules_stay_small():
    too_long = [str(p.relative_to(REPO)) for folder in ("platform", "actors", "jobs")
                for p in (REPO / folder).rglob("*.py") if len(p.read_text().splitlines()) > 800]
    assert too_long == []
