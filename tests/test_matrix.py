"""The matrix loader: shipped files load, malformed files are refused with file, key and line,
and rounds expand into well-named cells. No training here."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from mlx_parity import matrix
from mlx_parity.errors import ParityError, UsageError
from mlx_parity.matrix import (
    Catalog,
    MatrixError,
    ResolvedRound,
    Round,
    SourceIndex,
    find_matrix_dir,
    list_rounds,
    load_catalog,
    packaged_matrix_dir,
    resolve,
    resolve_round,
)
from mlx_parity.probes import BUILTIN_PROBES

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "matrix"
# The 15 seeds of the motivating rounds.
# fmt: off
MOTIVATING_SEEDS = [
    1, 7, 42, 123, 456, 789, 999, 1234, 3407, 5678, 9012, 12345, 22222, 31415, 65535,
]
# fmt: on


@pytest.fixture(autouse=True)
def _no_matrix_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(matrix.MATRIX_ENV, raising=False)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(SHIPPED)


def line_containing(text: str, marker: str) -> int:
    """1-based line of the only line of ``text`` containing ``marker``."""
    hits = [n for n, line in enumerate(text.splitlines(), 1) if marker in line]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


def make_matrix(tmp_path: Path, rounds: dict[str, str], probes: str | None = None) -> Path:
    """A matrix dir with the shipped catalog (or ``probes``) and the given round files."""
    root = tmp_path / "matrix"
    (root / "rounds").mkdir(parents=True)
    if probes is None:
        shutil.copy(SHIPPED / "probes.toml", root / "probes.toml")
    else:
        (root / "probes.toml").write_text(textwrap.dedent(probes))
    for round_id, text in rounds.items():
        (root / "rounds" / f"{round_id}.toml").write_text(textwrap.dedent(text))
    return root


def refused_round(tmp_path: Path, text: str) -> pytest.ExceptionInfo[MatrixError]:
    """Write ``text`` as round ``r`` of a fresh matrix and return how loading it is refused."""
    root = make_matrix(tmp_path, {"r": text})
    with pytest.raises(MatrixError) as excinfo:
        load_round("r", root)
    return excinfo


def refusal(excinfo: pytest.ExceptionInfo[MatrixError], file: str, key: str | None, line: int):
    """Check the error's attributes and that its message names all three."""
    err = excinfo.value
    message = str(err)
    assert err.file.name == file and file in message
    assert err.key == key
    assert err.line == line and f"{file}:{line}:" in message
    if key is not None:
        assert f"key {key!r}" in message
    return message


def load_round(round_id: str, root: Path | None = None) -> Round:
    return resolve_round(round_id, root).round


GOOD_ROUND = """\
hypothesis = "a test round"
probes = ["reference", "core", "clip-legacy"]
seeds = [1, 7]
"""


# --- the shipped matrix ---------------------------------------------------------------------


def test_shipped_catalog_has_the_motivating_probes(catalog: Catalog) -> None:
    expected = {
        "reference": "identical",
        "core": "identical",
        "clip-legacy": "any",
        "clip-off": "identical",
        "compile-off": "identical",
        "pad-multiple": "any",
        "mask-exclusive": "diverges",
        "fp16": "diverges",
        "layers-all": "diverges",
        "accum-token": "diverges",
        "accum-mean": "diverges",
        "no-seed": "diverges",
        "no-bias-correction": "diverges",
        "legacy-trainer": "diverges",
    }
    # The published trainers' adapters, each mapped faithfully and with its own defaults.
    peers = {
        f"{name}{mode}": f"plugin:{name}"
        for name in ("unsloth-zoo", "mlx-tune", "mlx-lm-lora")
        for mode in ("", "-defaults")
    }
    # Mapped faithfully they claim nothing in the catalog, so the plugin default holds them to
    # parity; with their own defaults they are measured, not judged.
    expected |= {pid: "any" if pid.endswith("-defaults") else None for pid in peers}
    assert {pid: p.expect for pid, p in catalog.probes.items()} == expected
    peers_round = resolve_round("peers", REPO / "matrix")
    assert peers_round.probe("mlx-tune").expect == "equivalent"
    assert peers_round.probe("mlx-tune-defaults").expect == "any"
    assert all(p.description for p in catalog.probes.values())
    assert catalog.get("reference").trainer == "reference"
    for pid, probe in catalog.probes.items():
        assert probe.trainer == peers.get(pid, "reference" if pid == "reference" else "core")
        assert probe.options == ({"defaults": True} if pid.endswith("-defaults") else {})


def test_shipped_probe_knobs_resolve_as_described(catalog: Catalog) -> None:
    base = Round(id="t", hypothesis="h", probes=["reference"], seeds=[1])
    knobs = {pid: base.knobs_for(p) for pid, p in catalog.probes.items()}
    assert knobs["core"] == knobs["reference"]
    assert knobs["clip-legacy"].clip == "value:1"
    assert knobs["clip-off"].clip == "none"
    assert knobs["compile-off"].compile is False
    assert knobs["pad-multiple"].padding == "multiple"
    assert knobs["mask-exclusive"].loss_mask == "exclusive"
    assert knobs["fp16"].dtype == "float16"
    assert knobs["layers-all"].num_layers == -1
    assert (knobs["accum-token"].grad_accum, knobs["accum-token"].accum_norm) == (2, "token")
    assert (knobs["accum-mean"].grad_accum, knobs["accum-mean"].accum_norm) == (2, "mean")


def test_every_shipped_round_loads(catalog: Catalog) -> None:
    rounds = list_rounds(SHIPPED)
    assert {"smoke", "demo", "motivating", "pad-boundary"} <= set(rounds)
    for round_id in rounds:
        resolved = resolve_round(round_id, SHIPPED)
        round_ = resolved.round
        assert round_.id == round_id and round_.hypothesis
        assert round_.baseline in round_.probes
        assert resolved.cells()
        assert list(resolved.probes) == round_.probes
        for probe_id, probe in resolved.probes.items():
            assert probe.knobs == round_.knobs_for(catalog.get(probe_id))
            assert probe.trainer.name == catalog.get(probe_id).trainer


def test_shipped_round_shapes() -> None:
    smoke = load_round("smoke", SHIPPED)
    assert smoke.probes == ["reference", "core", "clip-legacy"] and len(smoke.seeds) == 2
    demo = load_round("demo", SHIPPED)
    assert demo.probes == [
        "reference",
        "core",
        "clip-legacy",
        "pad-multiple",
        "mask-exclusive",
        "compile-off",
    ]
    assert len(demo.seeds) == 8 and set(demo.seeds) <= set(MOTIVATING_SEEDS)
    motivating = load_round("motivating", SHIPPED)
    assert motivating.seeds == MOTIVATING_SEEDS
    assert motivating.probes == [
        "reference",
        "core",
        "clip-legacy",
        "clip-off",
        "compile-off",
        "pad-multiple",
    ]


def test_pad_boundary_row_is_exactly_32_training_tokens(tokenizer, catalog: Catalog) -> None:
    resolved = resolve_round("pad-boundary", SHIPPED)
    round_ = resolved.round
    assert round_.probes == ["reference", "core", "pad-multiple"]
    (row,) = round_.fixture.rows
    assert len(tokenizer.encode(row)) + 1 == 32  # + the EOS appended in training
    assert round_.fixture.prompt + round_.fixture.completion == row
    assert resolved.probe("pad-multiple").expect == "diverges"
    assert resolved.probe("core").expect == "identical"


def test_packaged_matrix_is_a_link_to_the_one_copy() -> None:
    shipped = packaged_matrix_dir()
    assert shipped.is_symlink() and shipped.resolve() == SHIPPED.resolve()
    assert list_rounds(shipped) == list_rounds(SHIPPED)
    assert load_round("demo", shipped) == load_round("demo", SHIPPED)


def test_find_matrix_dir_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_matrix_dir(REPO / "src" / "mlx_parity") == SHIPPED
    # No matrix above: the packaged one.
    assert find_matrix_dir(tmp_path) == packaged_matrix_dir()
    # An unrelated folder called "matrix" is not a matrix.
    (tmp_path / "matrix").mkdir()
    assert find_matrix_dir(tmp_path) == packaged_matrix_dir()
    mine = make_matrix(tmp_path, {"r": GOOD_ROUND})
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert find_matrix_dir(nested) == mine
    monkeypatch.chdir(nested)
    assert find_matrix_dir() == mine
    monkeypatch.setenv(matrix.MATRIX_ENV, str(SHIPPED))
    assert find_matrix_dir(nested) == SHIPPED
    monkeypatch.setenv(matrix.MATRIX_ENV, str(tmp_path / "missing"))
    with pytest.raises(MatrixError, match="MLX_PARITY_MATRIX"):
        find_matrix_dir()


# --- the source index -----------------------------------------------------------------------


def test_source_index_finds_keys_tables_and_elements() -> None:
    text = textwrap.dedent(
        """\
        # comment with [brackets] and key = "value"
        title = "a # not a comment, [nor] an array"
        seeds = [
          1, 7,  # two on this line
          42,
          [5, 6],
        ]
        multi = \"\"\"
        line = 3
        \"\"\"
        after = 1
        point.x = 2
        "quoted.key" = 'x'

        [gates]
        cf_loss_max = 0.3

        [probes.clip-legacy]
        knobs = { clip_semantics = "legacy", lr = 1e-3 }

        [probes."v1.2"]
        rows = ["a, b", "c]"]

        [[steps]]
        n = 1
        [[steps]]
        n = 2
        """
    )
    index = SourceIndex(text)

    def line(*path):
        return index.line_of(path)

    assert line("title") == 2
    assert (line("seeds"), line("seeds", 0), line("seeds", 1)) == (3, 4, 4)
    assert (line("seeds", 2), line("seeds", 3), line("seeds", 3, 1)) == (5, 6, 6)
    assert line("after") == 11 and line("point", "x") == 12 and line("quoted.key") == 13
    assert line("gates") == 15 and line("gates", "cf_loss_max") == 16
    assert line("gates", "missing") == 15  # a missing key points at its table
    assert line("probes", "clip-legacy", "knobs", "lr") == 19
    assert line("probes", "v1.2", "rows", 1) == 22
    assert (line("steps", 0, "n"), line("steps", 1, "n")) == (25, 27)
    assert line("nowhere") is None


def test_source_index_survives_text_it_cannot_scan() -> None:
    index = SourceIndex('a = 1\nb = "unterminated\nc = 3\n')
    assert index.line_of(("a",)) == 1 and index.line_of(("b",)) == 2


# --- refusals -------------------------------------------------------------------------------


def test_toml_syntax_error(tmp_path: Path) -> None:
    text = 'hypothesis = "h"\nprobes = ["reference", "core"\nseeds = [1]\n'
    root = make_matrix(tmp_path, {"bad": text})
    with pytest.raises(MatrixError) as excinfo:
        load_round("bad", root)
    message = refusal(excinfo, "bad.toml", "probes", 3)
    assert "TOML syntax error" in message and excinfo.value.key == "probes"


def test_toml_syntax_error_in_a_table_header_names_no_other_key(tmp_path: Path) -> None:
    # The last key that parsed is on an earlier line; the broken header is what to fix.
    probes = '[probes.x]\ntrainer = "core"\n\n[probes.y\ntrainer = "core"\n'
    root = make_matrix(tmp_path, {"r": GOOD_ROUND}, probes=probes)
    with pytest.raises(MatrixError) as excinfo:
        load_catalog(root)
    assert excinfo.value.line == 4 and excinfo.value.key is None
    assert "TOML syntax error" in str(excinfo.value)


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    root = make_matrix(tmp_path, {"r": GOOD_ROUND})
    round_file = root / "rounds" / "r.toml"
    round_file.write_bytes(b"\xef\xbb\xbf" + round_file.read_bytes())
    assert load_round("r", root).id == "r"


def test_toml_syntax_error_in_catalog(tmp_path: Path) -> None:
    root = make_matrix(tmp_path, {"r": GOOD_ROUND}, probes='[probes.x]\ntrainer = "core\n')
    with pytest.raises(MatrixError) as excinfo:
        load_catalog(root)
    refusal(excinfo, "probes.toml", "probes.x.trainer", 2)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    text = GOOD_ROUND + 'colour = "red"\n'
    excinfo = refused_round(tmp_path, text)
    message = refusal(excinfo, "r.toml", "colour", line_containing(text, "colour"))
    assert "unknown key" in message and "hypothesis" in message  # lists what is allowed


def test_unknown_key_in_gates(tmp_path: Path) -> None:
    text = GOOD_ROUND + "\n[gates]\ncf_loss_max = 0.4\ncf_loss_mx = 0.3\n"
    excinfo = refused_round(tmp_path, text)
    message = refusal(excinfo, "r.toml", "gates.cf_loss_mx", line_containing(text, "loss_mx"))
    assert "cf_loss_max" in message


def test_unknown_key_in_fixture(tmp_path: Path) -> None:
    text = GOOD_ROUND + '\n[fixture]\nrowz = ["hello"]\n'
    excinfo = refused_round(tmp_path, text)
    refusal(excinfo, "r.toml", "fixture.rowz", line_containing(text, "rowz"))


PROBES_HEAD = """\
[probes.core]
trainer = "core"

"""


@pytest.mark.parametrize(
    ("entry", "key", "marker", "words"),
    [
        (
            '[probes.pad]\nknobs = { padding = "multiple", paddding = 1 }\n',
            "probes.pad.knobs.paddding",
            "paddding",
            "unknown knob 'paddding'",
        ),
        (
            "[probes.pad.knobs]\npadding = 'multiple'\nlr = -1\n",
            "probes.pad.knobs.lr",
            "lr = -1",
            "knob 'lr'",
        ),
        (
            "[probes.pad]\nknobs = { padding = 'sideways' }\n",
            "probes.pad.knobs.padding",
            "sideways",
            "sideways",
        ),
        ("[probes.pad]\ntrainer = 'mine'\n", "probes.pad.trainer", "mine", "unknown trainer"),
        ("[probes.pad]\nexpect = 'same'\n", "probes.pad.expect", "same", "same"),
        ("[probes.pad]\nid = 'pad'\n", "probes.pad.id", "id =", "unknown key"),
        (
            "[probes.ref2]\ntrainer = 'reference'\nknobs = { compile = false }\n",
            "probes.ref2",
            "[probes.ref2]",
            "reference trainer",
        ),
        (
            "[probes.reference]\ntrainer = 'core'\n",
            "probes.reference",
            "[probes.reference]",
            "built-in probe",
        ),
        ("[probes.Core]\ntrainer = 'core'\n", "probes.Core", "[probes.Core]", "only by case"),
        ("[probez.x]\ntrainer = 'core'\n", "probez", "probez", "unknown key"),
    ],
)
def test_bad_catalog_entries(tmp_path: Path, entry: str, key: str, marker: str, words: str):
    text = PROBES_HEAD + entry
    root = make_matrix(tmp_path, {}, probes=text)
    with pytest.raises(MatrixError) as excinfo:
        load_catalog(root)
    message = refusal(excinfo, "probes.toml", key, line_containing(text, marker))
    assert words in message


@pytest.mark.parametrize(
    ("extra", "key", "marker", "words"),
    [
        ("\n[settings]\nsteps = 0\n", "settings.steps", "steps = 0", "knob 'steps'"),
        ("\n[settings]\nsteps = 5\nlrate = 1\n", "settings.lrate", "lrate", "unknown knob"),
        ("\n[settings]\nlr = inf\n", "settings.lr", "lr = inf", "finite number"),
        (
            "\n[settings]\nschedule = 'linear_warmup'\n",
            "settings.schedule",
            "schedule",
            "warmup_steps",
        ),
        ("\n[settings]\ncompile = false\n", "probes[0]", "probes =", "reference trainer"),
        ("\n[gates]\ncf_loss_max = 'low'\n", "gates.cf_loss_max", "low", "valid number"),
        ("seeds_per_cell = 0\n", "seeds_per_cell", "seeds_per_cell", "greater than or equal"),
        ("pins = '../up'\n", "pins", "pins", "pattern"),
        ("\n[expect]\nfp16 = 'diverges'\n", "expect.fp16", "fp16", "names a probe"),
        ("\n[fixture]\ncf_gate = 0.2\n", "fixture.cf_gate", "cf_gate", "unknown key"),
        ("id = 'other'\n", "id", "id =", "file name"),
    ],
)
def test_bad_round_values(tmp_path: Path, extra: str, key: str, marker: str, words: str):
    text = GOOD_ROUND + extra
    excinfo = refused_round(tmp_path, text)
    message = refusal(excinfo, "r.toml", key, line_containing(text, marker))
    assert words in message


def test_unknown_probe_in_a_round(tmp_path: Path) -> None:
    text = 'hypothesis = "h"\nseeds = [1]\nprobes = [\n  "reference",\n  "core",\n  "clip-of",\n]\n'
    excinfo = refused_round(tmp_path, text)
    message = refusal(excinfo, "r.toml", "probes[2]", line_containing(text, "clip-of"))
    assert "unknown probe 'clip-of' (known: reference, core, clip-legacy" in message


def test_baseline_not_among_probes(tmp_path: Path) -> None:
    text = GOOD_ROUND + 'baseline = "fp16"\n'
    excinfo = refused_round(tmp_path, text)
    refusal(excinfo, "r.toml", "baseline", line_containing(text, "baseline"))


def test_duplicate_seed_points_at_the_repeat(tmp_path: Path) -> None:
    text = 'hypothesis = "h"\nprobes = ["reference"]\nseeds = [\n  1, 7,\n  42, 7,\n]\n'
    excinfo = refused_round(tmp_path, text)
    message = refusal(excinfo, "r.toml", "seeds[3]", 5)
    assert "duplicate seed 7 (also seeds[1])" in message


@pytest.mark.parametrize("bad", ['"x"', "-3", '"42"', "4294967296"])
def test_bad_seed_values(tmp_path: Path, bad: str) -> None:
    # A quoted number is refused (not read as the seed), and a seed must fit the unsigned
    # 32 bits numpy and MLX seed with, or every probe job would fail on it.
    text = f'hypothesis = "h"\nprobes = ["reference"]\nseeds = [1, {bad}]\n'
    root = make_matrix(tmp_path, {"r": text})
    with pytest.raises(MatrixError) as excinfo:
        load_round("r", root)
    refusal(excinfo, "r.toml", "seeds[1]", 3)


def test_missing_required_key_names_it(tmp_path: Path) -> None:
    root = make_matrix(tmp_path, {"r": 'probes = ["reference"]\nseeds = [1]\n'})
    with pytest.raises(MatrixError, match="r.toml: key 'hypothesis': required key is missing"):
        load_round("r", root)


def test_several_problems_report_the_first_and_count_the_rest(tmp_path: Path) -> None:
    text = GOOD_ROUND + "\n[gates]\nx = 1\ny = 2\n"
    excinfo = refused_round(tmp_path, text)
    message = refusal(excinfo, "r.toml", "gates.x", line_containing(text, "x = 1"))
    assert f"(also line {line_containing(text, 'y = 2')}, key 'gates.y': unknown key" in message


@pytest.mark.parametrize("bad_id", ["../etc", "a;b", "$(x)", "", "-lead", "a" * 41, "a/b"])
def test_malformed_round_id_is_refused_before_the_filesystem(
    bad_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_filesystem(*args, **kwargs):
        raise AssertionError("touched the filesystem")

    monkeypatch.setattr(matrix, "find_matrix_dir", no_filesystem)
    with pytest.raises(MatrixError) as excinfo:
        load_round(bad_id)
    assert excinfo.value.key == "id" and repr(bad_id) in str(excinfo.value)
    assert "rounds" in str(excinfo.value) and excinfo.value.exit_code == 2


def test_missing_round_file_lists_known_rounds(tmp_path: Path) -> None:
    root = make_matrix(tmp_path, {"r": GOOD_ROUND, "s": GOOD_ROUND})
    with pytest.raises(MatrixError) as excinfo:
        load_round("nope", root)
    message = str(excinfo.value)
    assert excinfo.value.file.name == "nope.toml" and "nope.toml" in message
    assert excinfo.value.key is None  # the file is missing, not a key in it
    assert "known rounds: r, s" in message and isinstance(excinfo.value, ParityError)


def test_pins_must_exist_when_the_runner_ships_pin_sets(tmp_path: Path) -> None:
    text = GOOD_ROUND + 'pins = "mlx-0.30"\n'
    root = make_matrix(tmp_path, {"r": text})
    assert load_round("r", root).pins == "mlx-0.30"  # no runner beside this matrix
    pins = tmp_path / "runner" / "pins"
    pins.mkdir(parents=True)
    (pins / "default.txt").write_text("mlx==0.32\n")
    with pytest.raises(MatrixError) as excinfo:
        load_round("r", root)
    message = refusal(excinfo, "r.toml", "pins", line_containing(text, "pins"))
    assert "known: default" in message
    (pins / "mlx-0.30.txt").write_text("mlx==0.30.0\n")
    assert load_round("r", root).pins == "mlx-0.30"


def test_round_built_in_python_runs_the_same_checks() -> None:
    with pytest.raises(ValidationError, match="duplicate seed 1"):
        Round(id="t", hypothesis="h", probes=["reference"], seeds=[1, 1])
    with pytest.raises(ValidationError, match="baseline"):
        Round(id="t", hypothesis="h", probes=["core"], seeds=[1])


def test_catalog_get_names_known_probes(catalog: Catalog) -> None:
    with pytest.raises(MatrixError, match="unknown probe 'clip-of' \\(known: reference, core"):
        catalog.get("clip-of")
    assert Catalog().probes == BUILTIN_PROBES


# --- knobs and cells ------------------------------------------------------------------------


def test_settings_apply_to_every_probe_and_probes_win(catalog: Catalog) -> None:
    round_ = Round(
        id="t",
        hypothesis="h",
        probes=["reference", "accum-mean"],
        seeds=[1],
        settings={"steps": 4, "lr": 5e-3, "grad_accum": 3},
    )
    assert round_.knobs_for(catalog.get("reference")).steps == 4
    accum = round_.knobs_for(catalog.get("accum-mean"))
    assert (accum.steps, accum.lr, accum.grad_accum) == (4, 5e-3, 2)


def sharded_round(seeds_per_cell: int | None) -> ResolvedRound:
    round_ = Round(
        id="demo",
        hypothesis="h",
        probes=["reference", "core", "clip-legacy"],
        seeds=[1, 7, 42, 123, 456],
        seeds_per_cell=seeds_per_cell,
    )
    return resolve(round_, load_catalog(SHIPPED))


def test_one_cell_per_probe_by_default(catalog: Catalog) -> None:
    cells = sharded_round(None).cells()
    assert [(c.probe_id, c.seeds, c.index) for c in cells] == [
        ("reference", [1, 7, 42, 123, 456], 0),
        ("core", [1, 7, 42, 123, 456], 0),
        ("clip-legacy", [1, 7, 42, 123, 456], 0),
    ]
    assert [c.name for c in cells] == ["demo-reference-0", "demo-core-0", "demo-clip-legacy-0"]


def test_sharded_cells_cover_every_seed_once_with_unique_names(catalog: Catalog) -> None:
    cells = sharded_round(2).cells()
    assert len(cells) == 9
    assert [c.seeds for c in cells[:3]] == [[1, 7], [42, 123], [456]]
    assert len({c.name.lower() for c in cells}) == len(cells)
    for probe_id in ("reference", "core", "clip-legacy"):
        seeds = [s for c in cells if c.probe_id == probe_id for s in c.seeds]
        assert seeds == [1, 7, 42, 123, 456]
    assert all(set(c.name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-._") for c in cells)


def test_filters_keep_round_order_and_cell_names(catalog: Catalog) -> None:
    round_ = sharded_round(2)
    cells = round_.cells(probe_filter=["clip-legacy", "reference"], seed_filter=[456, 7])
    assert [(c.name, c.seeds) for c in cells] == [
        ("demo-reference-0", [7]),
        ("demo-reference-2", [456]),
        ("demo-clip-legacy-0", [7]),
        ("demo-clip-legacy-2", [456]),
    ]
    assert round_.cells([], []) == round_.cells()


def test_unknown_filter_values_are_refused(catalog: Catalog) -> None:
    round_ = sharded_round(None)
    with pytest.raises(UsageError, match="no probe 'fp16'.*its probes: reference, core"):
        round_.cells(probe_filter=["fp16"])
    with pytest.raises(UsageError, match="no seed 3"):
        round_.cells(seed_filter=[1, 3])


def test_resolving_refuses_a_probe_missing_from_the_catalog() -> None:
    round_ = Round(id="t", hypothesis="h", probes=["reference", "fp16"], seeds=[1])
    with pytest.raises(MatrixError, match="unknown probe 'fp16'"):
        resolve(round_, Catalog())


def test_round_survives_a_json_round_trip() -> None:
    # The plan job hands rounds to other jobs as JSON; nothing may change on the way.
    for round_id in list_rounds(SHIPPED):
        round_ = load_round(round_id, SHIPPED)
        assert Round.model_validate_json(round_.model_dump_json()) == round_


# --- defaults shared by every round ---------------------------------------------------------


def test_rounds_start_from_the_matrix_defaults_and_override_them(tmp_path: Path) -> None:
    own = GOOD_ROUND + "\n[settings]\nsteps = 3\n\n[gates]\ntrace_tolerance = 0.5\n"
    root = make_matrix(tmp_path, {"plain": GOOD_ROUND, "own": own})
    (root / "defaults.toml").write_text(
        "[settings]\nsteps = 12\nlr = 3e-4\n\n[gates]\ncf_loss_max = 1.5\n"
    )
    plain = resolve_round("plain", root)
    assert (plain.probe("core").knobs.steps, plain.probe("core").knobs.lr) == (12, 3e-4)
    assert plain.gates.cf_loss_max == 1.5
    mine = resolve_round("own", root)
    assert (mine.probe("core").knobs.steps, mine.probe("core").knobs.lr) == (3, 3e-4)
    assert (mine.gates.cf_loss_max, mine.gates.trace_tolerance) == (1.5, 0.5)


def test_the_shipped_defaults_are_what_the_local_rounds_train_with() -> None:
    for round_id in ("smoke", "demo", "motivating"):
        resolved = resolve_round(round_id, SHIPPED)
        knobs = resolved.baseline.knobs
        assert (knobs.steps, knobs.lr, resolved.gates.cf_loss_max) == (12, 3e-4, 1.5)
    boundary = resolve_round("pad-boundary", SHIPPED)
    assert (boundary.baseline.knobs.steps, boundary.gates.cf_loss_max) == (30, 0.5)


@pytest.mark.parametrize(
    ("text", "key", "marker"),
    [
        ("[settings]\nsteps = 12\nlrr = 1\n", "settings.lrr", "lrr"),
        ("[gates]\ncf_loss_max = -1\n", "gates.cf_loss_max", "cf_loss_max"),
        ("[fixture]\nname = 'x'\n", "fixture", "[fixture]"),
    ],
)
def test_a_bad_defaults_file_is_refused_with_its_own_line(
    tmp_path: Path, text: str, key: str, marker: str
) -> None:
    root = make_matrix(tmp_path, {"r": GOOD_ROUND})
    (root / "defaults.toml").write_text(text)
    with pytest.raises(MatrixError) as excinfo:
        resolve_round("r", root)
    refusal(excinfo, "defaults.toml", key, line_containing(text, marker))
