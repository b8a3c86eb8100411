"""The test categories (pyproject.toml's markers, assigned in tests/conftest.py): every test collected in this run,
before -m or -k deselect any, has exactly one of unit / server / browser / gpu / multiprocess, the one its module
and fixtures call for; run with the whole suite (as CI does) this checks every test. And the markers are declared
once, strictly."""

from conftest import BY_MODULE, CATEGORIES, COLLECTED


def categories(item) -> list[str]:
    return [mark.name for mark in item.iter_markers() if mark.name in CATEGORIES]


def test_every_collected_test_has_exactly_one_category(request):
    items = request.config.stash[COLLECTED]
    assert request.node.nodeid in {item.nodeid for item in items}
    wrong = [f"{item.nodeid}: {categories(item)}" for item in items if len(categories(item)) != 1]
    assert wrong == [], "each test needs exactly one of " + ", ".join(CATEGORIES)


def test_the_category_fits_what_the_test_starts(request):
    for item in request.config.stash[COLLECTED]:
        (category,) = categories(item)
        if item.path.name in BY_MODULE:
            assert category == BY_MODULE[item.path.name], item.nodeid
        elif "server" in item.fixturenames:  # the shared app server: a server test, whatever it is marked
            assert category == "server", item.nodeid
    assert categories(request.node) == ["unit"]


def test_markers_are_declared_once_in_pyproject_and_strictly(pytestconfig):
    declared = [line.split(":")[0].strip() for line in pytestconfig.getini("markers")]
    ours = [name for name in declared if name in (*CATEGORIES, "bundled_model")]
    assert sorted(ours) == sorted((*CATEGORIES, "bundled_model"))  # each once: no second registration elsewhere
    assert "--strict-markers" in pytestconfig.getini("addopts")
    assert pytestconfig.inipath.name == "pyproject.toml"
