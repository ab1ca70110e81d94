"""MLflow's search grammar: the parser on its own, then filters, ordering and paging on
seeded runs, experiments and logged models (SQLite and PostgreSQL)."""

from __future__ import annotations

import re

import pytest

from lakeray.errors import InvalidArgument
from lakeray.tracking import search
from lakeray.tracking.search import EXPERIMENTS, LOGGED_MODELS, RUNS, parse_filter, parse_order_by
from lakeray.tracking.service import TrackingService

NAN = float("nan")


# -- the parser alone ------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("metrics.x > 0.5", [("metric", "x", ">", 0.5)]),
    ("metric.x>=-1e3", [("metric", "x", ">=", -1000.0)]),
    ("metrics.`my metric` <= .5", [("metric", "my metric", "<=", 0.5)]),
    ("metrics.\"quoted key\" != 2", [("metric", "quoted key", "!=", 2.0)]),
    ("params.p = 'a'", [("param", "p", "=", "a")]),
    ('param.p = "a"', [("param", "p", "=", "a")]),
    ("parameters.p != 'it''s'", [("param", "p", "!=", "it's")]),
    ("tags.t != 'b'", [("tag", "t", "!=", "b")]),
    ("tags.mlflow.source.type = 'LOCAL'", [("tag", "mlflow.source.type", "=", "LOCAL")]),
    ("tags.`a.b c` LIKE 'x%'", [("tag", "a.b c", "LIKE", "x%")]),
    ("tags.t ilike 'X%'", [("tag", "t", "ILIKE", "X%")]),
    ("params.p IS NULL", [("param", "p", "IS NULL", None)]),
    ("tags.t is not null", [("tag", "t", "IS NOT NULL", None)]),
    ("attributes.status = 'FINISHED'", [("attribute", "status", "=", "FINISHED")]),
    ("attribute.run_name LIKE 'x%'", [("attribute", "run_name", "LIKE", "x%")]),
    ("run_name ILIKE 'x%'", [("attribute", "run_name", "ILIKE", "x%")]),
    ("`Run name` = 'a'", [("attribute", "run_name", "=", "a")]),
    ("attr.run_id IN ('a', 'b')", [("attribute", "run_id", "IN", ("a", "b"))]),
    ("run.status NOT IN ('KILLED')", [("attribute", "status", "NOT IN", ("KILLED",))]),
    ("attributes.start_time >= 123", [("attribute", "start_time", ">=", 123)]),
    ("created < 5", [("attribute", "start_time", "<", 5)]),
    ("datasets.name = 'train'", [("dataset", "name", "=", "train")]),
    ("dataset.digest IN ('d1','d2')", [("dataset", "digest", "IN", ("d1", "d2"))]),
    ("datasets.context = 'eval'", [("dataset", "context", "=", "eval")]),
    ("metrics.a > 1 and params.b = 'c' AND tags.d = 'e'",
     [("metric", "a", ">", 1.0), ("param", "b", "=", "c"), ("tag", "d", "=", "e")]),
    ("params.p = 'x AND y OR z'", [("param", "p", "=", "x AND y OR z")]),
    ("params.p = 'a''; DROP TABLE runs; --'", [("param", "p", "=", "a'; DROP TABLE runs; --")]),
    ("", []),
    ("   ", []),
    (None, []),
])
def test_valid_run_filters_parse(text, expected):
    got = [(c.entity, c.key, c.op, c.value) for c in parse_filter(RUNS, text)]
    assert got == expected


@pytest.mark.parametrize("text, message", [
    ("metrics.x ~ 1", "invalid clause 'metrics.x ~ 1': unsupported comparator '~'"),
    ("params.p == 'a'", "unsupported comparator '=='"),
    ("params.p <> 'a'", "unsupported comparator '<>'"),
    ("metrics.x - 1", "unsupported comparator '-'"),
    ("params.p NOT LIKE 'a'", "unsupported comparator 'NOT'"),
    ("metrics.x > 1 OR metrics.y > 2", "OR is not supported"),
    ("metrics.x > 'a'", "compared with a number"),
    ("params.p = 1", "compared with a quoted string"),
    ("params.p > 'a'", "comparator '>' does not apply to params.p"),
    ("metrics.x LIKE 'a'", "comparator 'LIKE' does not apply"),
    ("attributes.start_time LIKE '1'", "does not apply"),
    ("foo.x = 'a'", "invalid entity 'foo'"),
    ("attributes.nope = 'a'", "invalid attribute 'nope'"),
    ("nope = 'a'", "invalid attribute 'nope'"),
    ("datasets.size = 'a'", "invalid dataset key 'size'"),
    ("params.p = 'a", "unterminated string"),
    ("metrics.`x > 1", "unterminated"),
    ("metrics.x >", "expected a value"),
    ("metrics.x", "expected a comparator"),
    ("AND metrics.x > 1", "AND must join two comparisons"),
    ("metrics.x > 1 AND", "AND must join two comparisons"),
    ("metrics.x > 1 AND AND metrics.y > 1", "AND must join"),
    ("(metrics.x > 1)", "expected a field"),
    ("'a' = params.p", "expected a field"),
    ("params.p = 'a'; DROP TABLE runs", "unexpected ';' after the value"),
    ("params.p = 'a' params.q = 'b'", "unexpected 'params.q' after the value"),
    ("attributes.start_time > 1.5", "64-bit integer"),
    ("attributes.start_time > 99999999999999999999", "64-bit integer"),
    ("metrics.x > 1e999", "finite number"),
    ("metrics.x IS NULL", "applies to params and tags only"),
    ("params.p IS 'a'", "expected NULL after IS"),
    ("params.p IN 'a'", "parenthesised list"),
    ("params.p IN ('a', 1)", "quoted strings"),
    ("params.p IN ('a' 'b')", "expected ',' or ')'"),
    ("params.p IN ('a',", "expected a quoted string"),
    ("params.p = 'a\x00'", "NUL"),
    ("params.p = ?", "expected a quoted string or a number"),
    ("metrics. = 1", "invalid attribute 'metrics'"),
])
def test_invalid_run_filters_name_the_problem(text, message):
    with pytest.raises(InvalidArgument) as err:
        parse_filter(RUNS, text)
    assert message in err.value.message


def test_filter_limits_and_types():
    with pytest.raises(InvalidArgument, match="must be a string"):
        parse_filter(RUNS, 5)
    with pytest.raises(InvalidArgument, match="limit"):
        parse_filter(RUNS, "params.p = '" + "a" * 20000 + "'")
    with pytest.raises(InvalidArgument, match="not valid Unicode"):
        parse_filter(RUNS, "params.p = '\ud800'")
    with pytest.raises(InvalidArgument, match="at most 1000 values"):
        parse_filter(RUNS, "run_id IN (" + ", ".join(["'a'"] * 1001) + ")")


def test_each_search_has_its_own_grammar():
    assert [(c.entity, c.key) for c in parse_filter(EXPERIMENTS, "name = 'x' AND tags.t = 'y'")] == [
        ("attribute", "name"), ("tag", "t")]
    with pytest.raises(InvalidArgument, match="experiments cannot be searched by 'metrics'"):
        parse_filter(EXPERIMENTS, "metrics.x > 1")
    with pytest.raises(InvalidArgument, match="invalid attribute 'status'"):
        parse_filter(EXPERIMENTS, "status = 'x'")
    with pytest.raises(InvalidArgument, match="64-bit integer"):
        parse_filter(EXPERIMENTS, "creation_time > 1.5")
    got = parse_filter(LOGGED_MODELS, "creation_time > 5 AND metrics.acc > 0.5 AND params.p = 'a' AND model_id "
                                      "IN ('m-1')")
    assert [(c.entity, c.key, c.value) for c in got] == [
        ("attribute", "creation_timestamp", 5), ("metric", "acc", 0.5), ("param", "p", "a"),
        ("attribute", "model_id", ("m-1",))]
    with pytest.raises(InvalidArgument, match="logged models cannot be searched by 'datasets'"):
        parse_filter(LOGGED_MODELS, "datasets.name = 'x'")


def test_run_conditions_put_a_runs_own_columns_then_param_and_tag_equalities_first():
    from lakeray.tracking.filters import run_conditions

    text = ("metrics.score > 0.5 AND tags.team LIKE 'a%' AND params.model = 'a' "
            "AND attributes.status = 'FINISHED' AND tags.env IN ('prod', 'dev')")
    conditions = run_conditions(parse_filter(RUNS, text), "sqlite")
    rendered = [str(cond.compile(compile_kwargs={"literal_binds": True})) for cond in conditions]
    assert len(rendered) == 5
    assert "runs.status = 'FINISHED'" in rendered[0]
    assert "run_params" in rendered[1] and "'model'" in rendered[1]
    assert "run_tags" in rendered[2] and "'env'" in rendered[2]
    # the rest keep the filter's order: the metric, then the tag pattern
    assert "run_latest_metrics" in rendered[3] and "'score'" in rendered[3]
    assert "run_tags" in rendered[4] and "'team'" in rendered[4]


def test_order_by_parsing():
    parsed = parse_order_by(RUNS, ["metrics.loss DESC", "attributes.start_time", "params.lr ASC",
                                   "tags.`my tag` desc", "end_time"])
    assert [(o.entity, o.key, o.ascending) for o in parsed] == [
        ("metric", "loss", False), ("attribute", "start_time", True), ("param", "lr", True),
        ("tag", "my tag", False), ("attribute", "end_time", True)]
    models = parse_order_by(LOGGED_MODELS, [{"field_name": "metrics.acc", "ascending": False, "dataset_name": "d"},
                                            "name ASC"])
    assert [(o.entity, o.key, o.ascending, o.dataset_name) for o in models] == [
        ("metric", "acc", False, "d"), ("attribute", "name", True, None)]
    for bad, message in [(["metrics.x UP"], "expected '<field> [ASC|DESC]'"),
                         (["nope"], "invalid attribute 'nope'"),
                         (["metrics.x DESC extra"], "expected '<field>"),
                         (["metrics.x", "metrics.x DESC"], "twice"),
                         (["datasets.name"], "runs cannot be ordered by datasets"),
                         ("metrics.x", "must be a list"),
                         (["'a'"], "expected a field"),
                         ([{"field_name": "metrics.x", "ascending": "no"}], "true or false"),
                         ([{"field": "x"}], "field_name (required)")]:
        grammar = LOGGED_MODELS if isinstance(bad, list) and bad and isinstance(bad[0], dict) else RUNS
        with pytest.raises(InvalidArgument, match=re.escape(message)):
            parse_order_by(grammar, bad)
    with pytest.raises(InvalidArgument, match="twice"):
        parse_order_by(RUNS, ["start_time", "created DESC"])  # an alias is the same field
    with pytest.raises(InvalidArgument, match="cannot be ordered by params"):
        parse_order_by(LOGGED_MODELS, ["params.p"])
    with pytest.raises(InvalidArgument, match="cannot be ordered by tags"):
        parse_order_by(EXPERIMENTS, ["tags.t"])


def test_page_tokens_and_max_results():
    token = search.page_token(40, "abc")
    assert search.page_offset(token, "abc") == 40
    assert search.page_offset(None, "abc") == search.page_offset("", "abc") == 0
    for bad in ("garbage!", "eyJ4IjogMX0=", 5, "a" * 600):
        with pytest.raises(InvalidArgument, match="page_token"):
            search.page_offset(bad, "abc")
    with pytest.raises(InvalidArgument, match="other arguments"):
        search.page_offset(token, "other")
    assert search.max_results(None, 1000, 50000) == 1000
    assert search.max_results(0, 1000, 50000) == 1000
    assert search.max_results(50000, 1000, 50000) == 50000
    assert search.max_results("10", 1000, 50000) == 10  # GET query strings
    for bad in (50001, -1, "-1", "ten", "1e3", True, 1.5):
        with pytest.raises(InvalidArgument, match="max_results"):
            search.max_results(bad, 1000, 50000)


# -- searches on seeded data ---------------------------------------------------------------------
@pytest.fixture
def svc(registry, tmp_path):
    return TrackingService(registry.db, registry.audit, tmp_path / "artifacts")


@pytest.fixture
def admin(registry):
    return registry.principals.caller("admin")


def _seed_runs(svc, admin) -> tuple[str, dict[str, str]]:
    """Four active runs and a deleted one, with metrics, params, tags, datasets."""
    exp = svc.create_experiment(admin, "search")["experiment_id"]
    ids: dict[str, str] = {}

    def run(name, start, metrics=(), params=(), tags=()):
        rid = svc.create_run(admin, experiment_id=exp, run_name=name, start_time=start)["run"]["info"]["run_id"]
        svc.log_batch(admin, run_id=rid,
                      metrics=[{"key": k, "value": v, "timestamp": start, "step": 0} for k, v in metrics],
                      params=[{"key": k, "value": v} for k, v in params],
                      tags=[{"key": k, "value": v} for k, v in tags])
        ids[name] = rid
        return rid

    run("alpha-1", 1000, [("loss", 0.1), ("acc", 0.9)], [("lr", "0.01"), ("opt", "adam")],
        [("team", "red"), ("my tag", "x y")])
    run("Alpha-2", 2000, [("loss", 0.5), ("acc", 0.7)], [("lr", "0.1"), ("opt", "sgd")], [("team", "blue")])
    run("beta", 3000, [("loss", NAN), ("my metric", 3)], [("lr", "0.1")],
        [("team", "red"), ("mlflow.parentRunId", ids["alpha-1"])])
    run("gamma%star*", 4000, params=[("path", "C:\\dir\\[x]")])
    run("deleted-run", 5000, [("loss", 0.2)])
    svc.delete_run(admin, ids["deleted-run"])
    svc.update_run(admin, run_id=ids["alpha-1"], status="FINISHED", end_time=1500)
    svc.update_run(admin, run_id=ids["beta"], status="FAILED")
    svc.update_run(admin, run_id=ids["gamma%star*"], status="KILLED", end_time=4500)
    svc.log_inputs(admin, run_id=ids["alpha-1"], datasets=[{
        "dataset": {"name": "train", "digest": "d1", "source_type": "local", "source": "{}"},
        "tags": [{"key": "mlflow.data.context", "value": "training"}]}])
    svc.log_inputs(admin, run_id=ids["gamma%star*"], datasets=[{
        "dataset": {"name": "eval", "digest": "d2", "source_type": "local", "source": "{}"},
        "tags": [{"key": "mlflow.data.context", "value": "eval"}]}])
    return exp, ids


def _names(result: dict) -> list[str]:
    return [r["info"]["run_name"] for r in result["runs"]]


def test_run_filters_select_the_right_runs(svc, admin):
    exp, ids = _seed_runs(svc, admin)
    active = {"alpha-1", "Alpha-2", "beta", "gamma%star*"}
    cases = [
        ("metrics.loss > 0.2", {"Alpha-2"}),
        ("metrics.loss < 1", {"alpha-1", "Alpha-2"}),
        ("metrics.loss != 0.1", {"Alpha-2", "beta"}),  # NaN satisfies != only
        ("metrics.loss = 0.1", {"alpha-1"}),
        ("metrics.loss = 0", set()),  # a NaN is stored as 0 but equals nothing
        ("metrics.loss >= 0", {"alpha-1", "Alpha-2"}),
        ("metrics.acc >= 0.7 AND metrics.loss <= 0.5", {"alpha-1", "Alpha-2"}),
        ("metrics.`my metric` = 3", {"beta"}),
        ("params.lr = '0.1'", {"Alpha-2", "beta"}),
        ('params.lr = "0.1"', {"Alpha-2", "beta"}),
        ("params.lr != '0.1'", {"alpha-1"}),
        ("params.opt LIKE 'a%'", {"alpha-1"}),
        ("params.opt LIKE 'A%'", set()),  # LIKE is case-sensitive
        ("params.opt ILIKE 'A%'", {"alpha-1"}),
        ("params.opt LIKE '_dam'", {"alpha-1"}),
        ("params.opt IN ('adam', 'sgd')", {"alpha-1", "Alpha-2"}),
        ("params.opt NOT IN ('adam')", {"Alpha-2"}),
        ("params.opt IS NULL", {"beta", "gamma%star*"}),
        ("params.opt IS NOT NULL", {"alpha-1", "Alpha-2"}),
        ("tags.team = 'red'", {"alpha-1", "beta"}),
        ("tags.`my tag` = 'x y'", {"alpha-1"}),
        (f"tags.mlflow.parentRunId = '{ids['alpha-1']}'", {"beta"}),
        ("attributes.status = 'FINISHED'", {"alpha-1"}),
        ("status != 'RUNNING'", {"alpha-1", "beta", "gamma%star*"}),
        ("attributes.status IN ('FAILED', 'KILLED')", {"beta", "gamma%star*"}),
        ("attributes.run_name LIKE 'alpha%'", {"alpha-1"}),
        ("attributes.run_name ILIKE 'alpha%'", {"alpha-1", "Alpha-2"}),
        ("run_name = 'beta'", {"beta"}),
        ("`Run name` = 'beta'", {"beta"}),
        ("run_name LIKE 'gamma%star*'", {"gamma%star*"}),  # * is literal, not a wildcard
        ("run_name LIKE '%*'", {"gamma%star*"}),
        ("run_name LIKE 'gamma_star%'", {"gamma%star*"}),
        ("run_name LIKE '[a-z]%'", set()),  # brackets are literal too
        ("params.path = 'C:\\dir\\[x]'", {"gamma%star*"}),
        ("params.path LIKE 'C:\\%'", {"gamma%star*"}),  # a backslash is no escape character
        ("params.path LIKE '%[x]'", {"gamma%star*"}),
        ("params.path ILIKE 'c:\\DIR%'", {"gamma%star*"}),
        (f"attributes.run_id IN ('{ids['alpha-1']}', '{ids['beta']}')", {"alpha-1", "beta"}),
        (f"run_id = '{ids['Alpha-2']}'", {"Alpha-2"}),
        (f"run_id NOT IN ('{ids['Alpha-2']}')", active - {"Alpha-2"}),
        ("attributes.start_time >= 2000", {"Alpha-2", "beta", "gamma%star*"}),
        ("attributes.start_time > 1000 AND attributes.start_time < 4000", {"Alpha-2", "beta"}),
        ("created < 2000", {"alpha-1"}),
        ("attributes.end_time > 0", {"alpha-1", "gamma%star*"}),
        ("datasets.name = 'train'", {"alpha-1"}),
        ("datasets.digest IN ('d1', 'd2')", {"alpha-1", "gamma%star*"}),
        ("datasets.context = 'eval'", {"gamma%star*"}),
        ("datasets.name LIKE 'e%'", {"gamma%star*"}),
        ("user_id = 'admin'", active),
        ("metrics.loss > 0.05 and params.lr = '0.01' AND tags.team = 'red'", {"alpha-1"}),
        ("params.lr = 'x'' OR ''1''=''1'", set()),
        ("tags.team = 'red'' OR 1=1 --'", set()),
        ("tags.`team' OR 1=1 --` = 'red'", set()),
        ("", active),
    ]
    wrong = []
    for text, expected in cases:
        got = set(_names(svc.search_runs(admin, experiment_ids=[exp], filter=text)))
        if got != expected:
            wrong.append((text, sorted(got), sorted(expected)))
    assert wrong == []
    # nothing was dropped by the injection attempts
    assert len(svc.search_runs(admin, experiment_ids=[exp])["runs"]) == 4


def test_run_view_types_and_experiment_ids(svc, admin):
    exp, ids = _seed_runs(svc, admin)
    deleted = svc.search_runs(admin, experiment_ids=[exp], run_view_type="DELETED_ONLY")
    assert _names(deleted) == ["deleted-run"]
    assert len(svc.search_runs(admin, experiment_ids=[exp], run_view_type="ALL")["runs"]) == 5
    assert _names(svc.search_runs(admin, experiment_ids=[exp], filter="metrics.loss = 0.2", run_view_type=3)) == [
        "deleted-run"]
    assert svc.search_runs(admin, experiment_ids=["0", "999999"])["runs"] == []
    assert svc.search_runs(admin, experiment_ids=[])["runs"] == []
    with pytest.raises(InvalidArgument, match="view_type"):
        svc.search_runs(admin, experiment_ids=[exp], run_view_type="SOME")
    with pytest.raises(InvalidArgument, match="Invalid experiment ID"):
        svc.search_runs(admin, experiment_ids=["abc"])
    with pytest.raises(InvalidArgument, match="unsupported comparator '~'"):
        svc.search_runs(admin, experiment_ids=[exp], filter="metrics.x ~ 1")


def test_run_ordering(svc, admin):
    exp, _ = _seed_runs(svc, admin)

    def order(*clauses):
        return _names(svc.search_runs(admin, experiment_ids=[exp], order_by=list(clauses)))

    assert order() == ["gamma%star*", "beta", "Alpha-2", "alpha-1"]  # start_time DESC
    assert order("metrics.loss ASC") == ["alpha-1", "Alpha-2", "beta", "gamma%star*"]  # NaN, then missing
    assert order("metrics.loss DESC") == ["Alpha-2", "alpha-1", "beta", "gamma%star*"]
    assert order("params.lr ASC") == ["alpha-1", "beta", "Alpha-2", "gamma%star*"]  # ties: start_time DESC
    assert order("params.lr DESC") == ["beta", "Alpha-2", "alpha-1", "gamma%star*"]
    assert order("attributes.start_time") == ["alpha-1", "Alpha-2", "beta", "gamma%star*"]
    assert order("created DESC") == ["gamma%star*", "beta", "Alpha-2", "alpha-1"]
    assert order("attributes.run_name ASC") == ["Alpha-2", "alpha-1", "beta", "gamma%star*"]  # byte-wise
    assert order("tags.team DESC") == ["beta", "alpha-1", "Alpha-2", "gamma%star*"]
    # runs without an end time come last, in the default order (start_time DESC)
    assert order("attributes.end_time DESC") == ["gamma%star*", "alpha-1", "beta", "Alpha-2"]
    assert order("attributes.end_time") == ["alpha-1", "gamma%star*", "beta", "Alpha-2"]
    assert order("metrics.acc DESC", "attributes.run_name") == ["alpha-1", "Alpha-2", "beta", "gamma%star*"]
    with pytest.raises(InvalidArgument, match="twice"):
        order("metrics.loss", "metrics.loss DESC")


def test_run_paging_walks_every_run_once(svc, admin):
    exp, _ = _seed_runs(svc, admin)
    for order_by in (None, ["metrics.loss DESC"], ["params.lr"]):
        full = _names(svc.search_runs(admin, experiment_ids=[exp], order_by=order_by))
        seen, token = [], None
        while True:
            page = svc.search_runs(admin, experiment_ids=[exp], order_by=order_by, max_results=1, page_token=token)
            seen += _names(page)
            token = page.get("next_page_token")
            if not token:
                break
        assert seen == full
    first = svc.search_runs(admin, experiment_ids=[exp], max_results=3)
    assert len(first["runs"]) == 3 and first["next_page_token"]
    rest = svc.search_runs(admin, experiment_ids=[exp], max_results=3, page_token=first["next_page_token"])
    assert len(rest["runs"]) == 1 and "next_page_token" not in rest
    with pytest.raises(InvalidArgument, match="other arguments"):
        svc.search_runs(admin, experiment_ids=[exp], filter="metrics.loss > 0", page_token=first["next_page_token"])
    with pytest.raises(InvalidArgument, match="max_results"):
        svc.search_runs(admin, experiment_ids=[exp], max_results=50001)


def test_experiment_search(svc, admin):
    _seed_runs(svc, admin)
    a = svc.create_experiment(admin, "exp-a", tags=[{"key": "k", "value": "v1"}])["experiment_id"]
    b = svc.create_experiment(admin, "exp-B", tags=[{"key": "k", "value": "v2"}])["experiment_id"]
    gone = svc.create_experiment(admin, "gone")["experiment_id"]
    svc.delete_experiment(admin, gone)

    def names(**kw):
        return [e["name"] for e in svc.search_experiments(admin, **kw)["experiments"]]

    assert names() == ["exp-B", "exp-a", "search", "Default"]  # creation_time DESC, experiment_id
    assert set(names(filter="name = 'exp-a'")) == {"exp-a"}
    assert set(names(filter="name LIKE 'exp-%'")) == {"exp-a", "exp-B"}
    assert set(names(filter="name LIKE 'exp-b'")) == set()
    assert set(names(filter="name ILIKE 'EXP-%'")) == {"exp-a", "exp-B"}
    assert set(names(filter="tags.k = 'v1'")) == {"exp-a"}
    assert set(names(filter="tags.k LIKE 'v%' AND name != 'exp-a'")) == {"exp-B"}
    assert set(names(filter="tags.k IS NULL")) == {"Default", "search"}
    assert set(names(filter=f"experiment_id IN ('{a}', '{b}')")) == {"exp-a", "exp-B"}
    assert set(names(filter="attributes.experiment_id = '0'")) == {"Default"}
    assert set(names(filter="creation_time >= 0 AND last_update_time > 0")) == {"exp-a", "exp-B", "search",
                                                                                  "Default"}
    assert names(order_by=["name ASC"]) == ["Default", "exp-B", "exp-a", "search"]
    assert names(order_by=["name DESC"]) == ["search", "exp-a", "exp-B", "Default"]
    assert names(view_type="DELETED_ONLY") == ["gone"]
    assert len(names(view_type="ALL")) == 5
    page = svc.search_experiments(admin, max_results=3)
    assert len(page["experiments"]) == 3
    rest = svc.search_experiments(admin, max_results=3, page_token=page["next_page_token"])
    assert [e["name"] for e in rest["experiments"]] == ["Default"] and "next_page_token" not in rest
    for bad, message in [("metrics.x > 1", "cannot be searched by 'metrics'"),
                         ("experiment_id LIKE '1%'", "experiment_id takes"),
                         ("experiment_id = 'abc'", "not an experiment ID"),
                         ("creation_time > 'a'", "compared with a number"),
                         ("tags.k IN ('a')", "experiment tags take")]:
        with pytest.raises(InvalidArgument, match=message):
            svc.search_experiments(admin, filter=bad)
    with pytest.raises(InvalidArgument, match="max_results"):
        svc.search_experiments(admin, max_results=50001)


def test_logged_model_search(svc, admin):
    exp, ids = _seed_runs(svc, admin)
    rid = ids["alpha-1"]

    def model(name, **kw):
        return svc.create_logged_model(admin, experiment_id=exp, name=name, source_run_id=rid,
                                       **kw)["model"]["info"]["model_id"]

    a = model("model-a", params=[{"key": "p", "value": "1"}], tags=[{"key": "t", "value": "x"}])
    b = model("model-b", params=[{"key": "p", "value": "2"}], model_type="agent")
    other = model("other")
    svc.log_metric(admin, run_id=rid, key="acc", value=0.9, timestamp=10, model_id=a, dataset_name="ds1",
                   dataset_digest="g1")
    svc.log_metric(admin, run_id=rid, key="acc", value=0.5, timestamp=10, model_id=b, dataset_name="ds2")
    svc.finalize_logged_model(admin, a, "LOGGED_MODEL_READY")

    def names(**kw):
        return [m["info"]["name"] for m in svc.search_logged_models(admin, experiment_ids=[exp], **kw)["models"]]

    assert set(names()) == {"model-a", "model-b", "other"}  # creation_timestamp DESC, then model_id
    assert names(filter="metrics.acc > 0.6") == ["model-a"]
    assert names(filter="params.p = '2'") == ["model-b"]
    assert names(filter="tags.t = 'x'") == ["model-a"]
    assert names(filter="tags.t IS NULL", order_by=["name"]) == ["model-b", "other"]
    assert names(filter="name LIKE 'model-%'", order_by=["name"]) == ["model-a", "model-b"]
    assert names(filter="status = 'READY'") == ["model-a"]
    assert names(filter="status = 'LOGGED_MODEL_READY'") == ["model-a"]
    assert names(filter="model_type = 'agent'") == ["model-b"]
    assert names(filter=f"model_id IN ('{other}')") == ["other"]
    assert names(filter=f"source_run_id = '{rid}' AND creation_timestamp > 0", order_by=["name"]) == [
        "model-a", "model-b", "other"]
    assert names(filter="metrics.acc > 0.1", datasets=[{"dataset_name": "ds2"}]) == ["model-b"]
    assert names(datasets=[{"dataset_name": "ds1", "dataset_digest": "g1"}]) == ["model-a"]
    assert names(datasets=[{"dataset_name": "ds1", "dataset_digest": "nope"}]) == []
    assert names(order_by=[{"field_name": "metrics.acc", "ascending": False}]) == ["model-a", "model-b", "other"]
    assert names(order_by=[{"field_name": "metrics.acc", "ascending": True}]) == ["model-b", "model-a", "other"]
    assert names(order_by=[{"field_name": "metrics.acc", "ascending": False, "dataset_name": "ds2"}])[0] == "model-b"
    assert names(order_by=["name DESC"]) == ["other", "model-b", "model-a"]
    page = svc.search_logged_models(admin, experiment_ids=[exp], max_results=2, order_by=["name"])
    rest = svc.search_logged_models(admin, experiment_ids=[exp], max_results=2, order_by=["name"],
                                    page_token=page["next_page_token"])
    assert [m["info"]["name"] for m in page["models"] + rest["models"]] == ["model-a", "model-b", "other"]
    svc.delete_logged_model(admin, other)
    assert set(names()) == {"model-a", "model-b"}
    for kw, message in [({"filter": "datasets.name = 'x'"}, "cannot be searched by 'datasets'"),
                        ({"filter": "metrics.acc LIKE 'x'"}, "does not apply"),
                        ({"order_by": ["params.p"]}, "cannot be ordered by params"),
                        ({"datasets": [{"dataset_digest": "x"}]}, "dataset_name"),
                        ({"filter": "metrics.acc > 1 OR name = 'x'"}, "OR is not supported")]:
        with pytest.raises(InvalidArgument, match=message):
            svc.search_logged_models(admin, experiment_ids=[exp], **kw)


def test_a_search_page_is_a_fixed_number_of_statements(svc, admin, registry):
    """Rendering a page queries per table, not per run (ids go as one parameter), and an
    empty page queries nothing beyond the search itself."""
    from sqlalchemy import event

    exp = svc.create_experiment(admin, "statements")["experiment_id"]
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    def searched(n_runs: int, flt: str | None = None) -> int:
        statements.clear()
        event.listen(registry.db.engine, "before_cursor_execute", count)
        try:
            found = svc.search_runs(admin, experiment_ids=[exp], filter=flt)["runs"]
        finally:
            event.remove(registry.db.engine, "before_cursor_execute", count)
        assert len(found) == n_runs
        return len([s for s in statements if s.lstrip().upper().startswith("SELECT")])

    assert searched(0) == 1  # the search itself
    for i in range(30):
        rid = svc.create_run(admin, experiment_id=exp)["run"]["info"]["run_id"]
        svc.log_batch(admin, run_id=rid, metrics=[{"key": "m", "value": float(i), "timestamp": 1, "step": 0}],
                      params=[{"key": "p", "value": str(i)}])
    assert searched(0, "params.p = 'none'") == 1
    # the search, then metrics, params, tags, dataset edges (their tags only if there are
    # any), model inputs and model outputs: the same for 30 runs as for 1,000
    assert searched(30) == 1 + 6
