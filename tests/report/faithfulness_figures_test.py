"""attn_audit.report.faithfulness_figures: PNG figures of a faithfulness summary, also when
parts of it were not run or are undefined."""

import copy
import itertools

import numpy as np
import pytest

from attn_audit.report import faithfulness_figures as ff
from tests._fixtures import assert_png

PERCENTS = [1, 5, 10, 20, 50]
REMOVALS = ["delete", "mask"]
RANKING = ["occlusion", "gradient", "attention", "random"]


def ci(mean, count=8):
    return {"mean": mean, "low": mean - 0.05, "high": mean + 0.05, "count": count}


def synthetic_summary():
    """A summary shaped like ``report.faithfulness_summary``'s, with made-up numbers."""
    explainers = {}
    for number, name in enumerate(RANKING):
        scale = 1.0 / (number + 1)
        curves = {
            measure: {
                removal: [ci(scale * (0.1 + p / 100) * sign) for p in PERCENTS]
                for removal in REMOVALS
            }
            for measure, sign in (("comprehensiveness_curve", 1), ("sufficiency_curve", 0.5))
        }
        explainers[name] = {
            **curves,
            "aopc_comprehensiveness": {removal: ci(scale) for removal in REMOVALS},
            "aopc_sufficiency": {removal: ci(scale / 2) for removal in REMOVALS},
        }
    pairs = ["|".join(pair) for pair in itertools.combinations(RANKING, 2)]
    randomisation = {
        f"{kind}/{block}": {name: ci(1.0 - step * 0.3) for name in RANKING}
        for kind in ("cascade", "independent")
        for step, block in enumerate(ff.BLOCKS)
    }
    return {
        "instances": 8,
        "percents": PERCENTS,
        "removals": REMOVALS,
        "explainers": explainers,
        "ranking": RANKING,
        "agreement": {
            "tau": {pair: ci(0.1 * n - 0.2) for n, pair in enumerate(pairs)},
            "jaccard": {pair: ci(0.1 * n) for n, pair in enumerate(pairs)},
        },
        "randomisation": randomisation,
        "randomisation_instances": 4,
    }


def drop(summary, part):
    summary = copy.deepcopy(summary)
    if part == "eraser":
        for name in summary["explainers"]:
            summary["explainers"][name] = {}
    elif part == "agreement":
        summary["agreement"] = {}
    elif part == "randomisation":
        summary["randomisation"] = {}
    elif part == "none_means":
        for entry in summary["explainers"]["gradient"]["comprehensiveness_curve"]["mask"]:
            entry.update(mean=None, low=None, high=None)
        summary["explainers"]["attention"]["sufficiency_curve"]["delete"][2]["mean"] = None
        summary["agreement"]["tau"]["attention|random"]["mean"] = None
        summary["randomisation"]["cascade/encoder"]["gradient"] = ci(0.0) | {"mean": None}
        del summary["randomisation"]["independent/embeddings"]
    elif part == "everything":
        summary = {}
    return summary


FIGURES = [ff.aopc_curves, ff.agreement_heatmap, ff.randomisation_cascade]


@pytest.mark.parametrize("figure", FIGURES, ids=lambda f: f.__name__)
def test_each_figure_writes_a_png(tmp_path, figure):
    path = tmp_path / "sub" / f"{figure.__name__}.png"
    assert figure(synthetic_summary(), path) == path
    assert_png(path)


@pytest.mark.parametrize(
    ("part", "figures"),
    [
        ("eraser", [ff.aopc_curves]),
        ("agreement", [ff.agreement_heatmap]),
        ("randomisation", [ff.randomisation_cascade]),
        ("everything", FIGURES),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_missing_parts_still_give_pngs(tmp_path, part, figures):
    summary = drop(synthetic_summary(), part)
    for figure in figures:
        assert_png(figure(summary, tmp_path / f"{part}_{figure.__name__}.png"))


def test_missing_parts_are_said_in_the_figure():
    def texts(fig):
        return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)

    empty = {}
    assert "not run" in texts(ff.aopc_curves_figure(empty))
    assert "not run" in texts(ff.agreement_heatmap_figure(empty))
    assert "not run" in texts(ff.randomisation_cascade_figure(empty))


def test_write_faithfulness_figures_writes_the_three_names_also_with_none_means(tmp_path):
    paths = ff.write_faithfulness_figures(drop(synthetic_summary(), "none_means"), tmp_path)
    assert [p.name for p in paths] == list(ff.FIGURE_NAMES.values())
    assert all(p.parent == tmp_path / "figures" for p in paths)
    for path in paths:
        assert_png(path)


def test_aopc_figure_draws_one_line_per_explainer_per_panel():
    fig = ff.aopc_curves_figure(synthetic_summary())
    assert len(fig.axes) == 2 * len(REMOVALS)
    titles = [ax.get_title() for ax in fig.axes]
    assert sum("higher is more faithful" in t for t in titles) == len(REMOVALS)
    assert sum("lower is more faithful" in t for t in titles) == len(REMOVALS)
    for ax in fig.axes:
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == RANKING
        widths = {line.get_label(): line.get_linewidth() for line in lines}
        assert widths["attention"] > max(widths["occlusion"], widths["gradient"])
        random = next(line for line in lines if line.get_label() == "random")
        assert random.get_linestyle() == "--"
        assert len(ax.collections) == len(RANKING)  # one CI band each


def test_agreement_matrix_is_symmetric_with_unit_diagonal():
    summary = synthetic_summary()
    matrix = ff._pair_matrix(summary["agreement"]["tau"], RANKING)
    np.testing.assert_array_equal(matrix, matrix.T)
    np.testing.assert_array_equal(np.diag(matrix), 1.0)
    assert matrix[0, 1] == pytest.approx(summary["agreement"]["tau"]["occlusion|gradient"]["mean"])
    fig = ff.agreement_heatmap_figure(summary)
    annotated = [t.get_text() for t in fig.axes[0].texts]
    assert len(annotated) == len(RANKING) ** 2 and annotated[0] == "1.00"
