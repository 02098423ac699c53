"""``commands._argv.step_out_of_lists``: a step name after a list option's values ends the list."""
import pytest

from deepsphere_gen.commands._argv import files_out_of_lists, step_out_of_lists

STEPS, LISTS, FLAGS = ("generate", "train", "classify"), ("--sky-fractions", "--methods"), ("--quick", "--force")


def move(*words):
    return step_out_of_lists(list(words), STEPS, LISTS, FLAGS)


def test_the_step_leaves_the_list_and_the_list_follows_the_rest():
    assert move("--sky-fractions", "1/12", "generate", "--nside", "8") == \
        ["generate", "--nside", "8", "--sky-fractions", "1/12"]
    assert move("--sky", "1", "1/12", "train") == ["train", "--sky", "1", "1/12"]  # an abbreviation
    assert move("--quick", "generate") == ["--quick", "generate"]  # after a flag: the step itself
    assert move("--out-dir", "train", "generate") == ["--out-dir", "train", "generate"]  # a one-value option's value
    assert move("--methods", "fcn", "--", "train") == ["--methods", "fcn", "--", "train"]  # after --: nothing moves


def test_the_list_stays_before_a_double_dash():
    """``--sky-fractions 1/12 classify -- m.fits``: the list must not land after ``--`` (where it would be
    read as map files)."""
    assert move("--sky-fractions", "1/12", "classify", "--", "m.fits") == \
        ["classify", "--sky-fractions", "1/12", "--", "m.fits"]


def test_a_later_use_of_the_option_still_wins():
    """argparse keeps the last value of an option; moving the earlier one to the end must not reverse that."""
    assert move("--methods", "fcn", "psd_svm", "train", "--methods", "cnn") == ["train", "--methods", "cnn"]
    assert move("--methods", "fcn", "train", "--meth=cnn") == ["train", "--meth=cnn"]
    assert move("--methods", "fcn", "train", "--sky-fractions", "1") == ["train", "--sky-fractions", "1", "--methods", "fcn"]


def test_file_names_leave_a_list_option():
    """``classify --ngal 22.5 a.fits``: argparse alone read a.fits as a galaxy density ("the following
    arguments are required: FITS"); the file names move in front of the option."""
    fits = lambda w: w.endswith(".fits")  # noqa: E731
    assert files_out_of_lists(["classify", "--ngal", "22.5", "a.fits", "b.fits", "--force"], ("--ngal",), fits) == \
        ["classify", "a.fits", "b.fits", "--ngal", "22.5", "--force"]
    assert files_out_of_lists(["--ngal", "22.5", "--", "a.fits"], ("--ngal",), fits) == ["--ngal", "22.5", "--", "a.fits"]
    assert files_out_of_lists(["--footprint", "m.fits"], ("--ngal",), fits) == ["--footprint", "m.fits"]  # one value


def test_classify_reads_its_maps_after_a_list_option():
    from deepsphere_gen.cli import parse_args

    args = parse_args(["massmaps", "classify", "--ngal", "22.5", "a.fits", "b.FITS.gz", "--force"])
    assert (args.maps, args.ngal, args.force) == (["a.fits", "b.FITS.gz"], ["22.5"], True)
    args = parse_args(["massmaps", "--sky-fractions", "1", "1/12", "classify", "--deepsphere-level", "2", "m.fits"])
    assert (args.step, args.maps, args.sky_fractions, args.deepsphere_level) == ("classify", ["m.fits"], ["1", "1/12"], [2.0])
    args = parse_args(["massmaps", "classify", "--checkpoint", "a.pt", "b.pt", "m.fits"])
    assert (args.maps, args.checkpoint) == (["m.fits"], ["a.pt", "b.pt"])


def test_files_after_several_list_options_are_read_as_maps():
    """Files after the values of two list options in a row went in front of the last one only, into the first
    one's values: "the following arguments are required: FITS", "galaxy density must be a number ... got
    'b.fits'"; they now go in front of the first one."""
    fits = lambda w: w.endswith(".fits")  # noqa: E731
    assert files_out_of_lists(["--sky-fractions", "1", "--ngal", "22.5", "a.fits"], ("--sky-fractions", "--ngal"), fits) \
        == ["a.fits", "--sky-fractions", "1", "--ngal", "22.5"]
    from deepsphere_gen.cli import parse_args

    for argv, maps, skies, ngal, level in [
            (["--out-dir", "O", "--sky-fractions", "1", "--ngal", "22.5", "a.fits"], ["a.fits"], ["1"], ["22.5"], None),
            (["--sky-fractions", "1", "--deepsphere-level", "0", "a.fits"], ["a.fits"], ["1"], None, [0.0]),
            (["--out-dir", "O", "--ngal", "22.5", "a.fits", "--sky-fractions", "1", "b.fits"], ["a.fits", "b.fits"],
             ["1"], ["22.5"], None),
            (["--sky-fractions", "1", "1/12", "--force", "--ngal", "22.5", "a.fits", "--deepsphere-level", "2", "b.fits"],
             ["a.fits", "b.fits"], ["1", "1/12"], ["22.5"], [2.0]),
            (["--sky-fractions", "1", "--ngal", "22.5", "--relative-noise", "1", "a.fits", "b.fits"], ["a.fits", "b.fits"],
             ["1"], ["22.5"], None)]:
        args = parse_args(["massmaps", "classify", *argv])
        assert (args.maps, args.sky_fractions, getattr(args, "ngal", None), getattr(args, "deepsphere_level", None)) == \
            (maps, skies, ngal, level), argv


def test_two_list_options_before_the_step():
    """The step after the second of two list options moves in front of both (it first landed after the
    first one's values, which then read it: "sky fraction must be ..., got 'train'")."""
    assert move("--quick", "--sky-fractions", "1", "--methods", "fcn", "train") == \
        ["--quick", "train", "--methods", "fcn", "--sky-fractions", "1"]
    from deepsphere_gen.cli import parse_args

    args = parse_args(["massmaps", "--quick", "--ngal", "22.5", "--methods", "fcn", "train", "--epochs", "2"])
    assert (args.step, args.ngal, args.methods, args.epochs, args.quick) == ("train", ["22.5"], ["fcn"], 2, True)
    args = parse_args(["massmaps", "--methods", "fcn", "--sky-fractions", "1", "1/12", "evaluate"])
    assert (args.step, args.methods, args.sky_fractions) == ("evaluate", ["fcn"], ["1", "1/12"])


@pytest.mark.parametrize("command", ["massmaps", "cosmo"])
def test_the_option_lists_match_the_parser(command):
    """A command's hand-kept lists of list options and flags are exactly what its parser (every step's
    parser included) declares: one drifted before (classify's ``--checkpoint FILE ...`` was missing)."""
    import argparse
    import importlib

    from deepsphere_gen.cli import build_parser

    def parsers(p):
        yield p
        for action in p._actions:  # argparse keeps its actions and sub-parsers here (test-only inspection)
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    yield from parsers(child)

    lists, flags = set(), set()
    for p in parsers(build_parser([command])):
        for action in p._actions:
            long = [o for o in action.option_strings if o.startswith("--")]
            if action.nargs == "+":
                lists.update(long)
            elif action.nargs == 0:
                flags.update(long)
    module = importlib.import_module(f"deepsphere_gen.commands.{command}")
    lists -= {"--version"}
    assert set(module._LIST_OPTIONS) == lists
    assert set(module._FLAGS) == flags


def test_the_commands_read_absent_options_with_one_function():
    """massmaps and cosmo each wrote ``_get(args, name, default=None)``: both use :func:`_argv.option`."""
    from argparse import Namespace

    from deepsphere_gen.commands import _argv, cosmo, massmaps

    assert massmaps._get is cosmo._get is _argv.option
    assert _argv.option(Namespace(nside=8), "nside") == 8 and _argv.option(Namespace(), "nside", 4) == 4


@pytest.mark.parametrize("command", ["massmaps", "cosmo"])
@pytest.mark.parametrize("step", ["generate", "train"])
@pytest.mark.parametrize("option", [["--json", "x.json"], ["--no-plots"]])
def test_an_option_the_step_does_not_use_is_refused_wherever_it_stands(command, step, option, capsys, tmp_path):
    """``massmaps --json x.json train`` wrote no JSON and said nothing (exit 0); ``massmaps train --json x.json``
    said "unrecognized arguments" with the top-level usage.  Both now: one line naming the option, the step
    and the steps that use it, before any work (``--device nope``: without the refusal the command would
    end at its device check, not train)."""
    from ._cli import refused

    common = ["--quick", "--device", "nope", "--data-dir", str(tmp_path / "d"), "--out-dir", str(tmp_path / "o")]
    for argv in ([*option, step, *common], [step, *common, *option]):
        cap = refused(command, argv, capsys, f"{option[0]} does not apply to {step}: only to evaluate and run")
        assert cap.err.startswith(f"deepsphere-gen {command}: error: ") and cap.err.count("\n") == 1, cap.err


@pytest.mark.parametrize("command", ["massmaps", "cosmo"])
@pytest.mark.parametrize("step", ["generate", "evaluate"])
def test_restart_is_refused_by_the_steps_that_train_nothing(command, step, capsys, tmp_path):
    """``cosmo evaluate --restart`` had its own words ("--restart retrains the methods: it applies to the train and
    run steps, not to evaluate"); ``massmaps generate --restart`` was silently ignored.  Both commands now refuse
    it through _USED_BY, worded as --json and --no-plots are, and leave it out of those steps' --help."""
    from deepsphere_gen.cli import main

    from ._cli import refused

    common = ["--quick", "--device", "nope", "--data-dir", str(tmp_path / "d"), "--out-dir", str(tmp_path / "o")]
    for argv in (["--restart", step, *common], [step, *common, "--restart"]):
        cap = refused(command, argv, capsys, f"--restart does not apply to {step}: only to train and run")
        assert cap.err == f"deepsphere-gen {command}: error: --restart does not apply to {step}: only to train and run\n"
    for shown_in, listed in ((step, False), ("train", True)):
        with pytest.raises(SystemExit):
            main([command, shown_in, "--help"])
        assert ("--restart" in capsys.readouterr().out) == listed


def test_every_unused_option_is_named_in_one_refusal():
    """``massmaps --json x --field 0 train`` named --json only; a rerun then refused --field."""
    from argparse import Namespace

    from deepsphere_gen.commands import _argv
    from deepsphere_gen.commands.massmaps import _USED_BY

    with pytest.raises(ValueError) as err:
        _argv.refuse_unused(Namespace(json="x", field=0, nside=8), "train", _USED_BY)
    assert str(err.value) == ("--json does not apply to train: only to evaluate and run; "
                              "--field does not apply to train: only to classify")


@pytest.mark.parametrize("command", ["massmaps", "cosmo"])
def test_the_help_of_a_step_lists_only_the_options_it_uses(command, capsys):
    from deepsphere_gen.cli import main

    for step, listed in (("train", False), ("evaluate", True)):
        with pytest.raises(SystemExit):
            main([command, step, "--help"])
        assert ("--json PATH" in capsys.readouterr().out) == listed


@pytest.mark.parametrize("argv", [
    ["massmaps", "--data-dir"], ["massmaps", "--out-dir"], ["massmaps", "--json"], ["massmaps", "--footprint"],
    ["massmaps", "train", "--data-dir"], ["massmaps", "classify", "m.fits", "--out-dir"],
    ["massmaps", "classify", "m.fits", "--checkpoint"], ["massmaps", "classify"],
    ["cosmo", "--data-dir"], ["cosmo", "--out-dir"], ["cosmo", "--json"], ["cosmo", "--footprint"],
    ["cosmo", "generate", "--data-dir"],
    ["digits", "--data-dir"], ["digits", "--json"], ["digits", "--plot"],
    ["equivariance", "--json"], ["equivariance", "--plot"],
    ["bench", "--json"], ["bench", "--json", "b.json", "--suite-dir"],
])
def test_an_empty_path_is_refused(argv, capsys):
    """``--data-dir ""`` (an unset shell variable) wrote into the default cache or the current folder and
    ``equivariance --json ""`` wrote nothing, silently: every option naming a file or folder refuses it, at
    parsing (before any work), naming the option."""
    from deepsphere_gen.cli import parse_args

    with pytest.raises(SystemExit) as exit_:
        parse_args([*argv, ""])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    name = argv[-1] if argv[-1].startswith("--") else "FITS"
    assert f"error: argument {name}: an empty path (an unset shell variable?)" in err, err


@pytest.mark.parametrize("argv, hint", [(["massmaps", "--quik"], " (did you mean --quick?)"),
                                        (["cosmo", "--quik"], " (did you mean --quick?)"),
                                        (["digits", "--quik"], " (did you mean --quick?)"),
                                        (["equivariance", "--seed", "1", "x"], "")])
def test_an_unknown_word_is_refused_by_the_command(argv, hint, capsys):
    """``massmaps --quik`` printed the top-level usage and "deepsphere-gen: error: ..." (the README promises
    "deepsphere-gen COMMAND: error: ..."): the command's parser refuses it, with the command's usage line, and
    names the option meant where one is close."""
    from deepsphere_gen.cli import parse_args

    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith(f"usage: deepsphere-gen {argv[0]} ")
    assert err.endswith(f"\ndeepsphere-gen {argv[0]}: error: unrecognized arguments: {argv[-1]}{hint}\n"), err


@pytest.mark.parametrize("command", ["massmaps", "cosmo"])
@pytest.mark.parametrize("words, bad, hint", [
    (["train", "--nsidee", "64"], "--nsidee 64", " (did you mean --nside?)"),
    (["evaluate", "--quik", "--methds", "graph"], "--quik --methds graph",
     " (did you mean --quick for --quik, --methods for --methds?)"),
    (["train", "--jsn", "x.json"], "--jsn x.json", ""),  # --json: not an option of train (hidden from its help)
    (["train", "--", "--nsidee"], "-- --nsidee", " (did you mean --nside?)"),  # was: "--k for --, --nside for ..."
])
def test_a_mistyped_option_after_a_step_is_refused_by_the_step(command, words, bad, hint, capsys):
    """``massmaps train --nsidee 64`` was refused with the command's usage and "deepsphere-gen massmaps: error:
    unrecognized arguments: --nsidee 64": now the step's usage and name, and the option meant where one of the
    step's options is close."""
    from deepsphere_gen.cli import parse_args

    with pytest.raises(SystemExit) as exit_:
        parse_args([command, *words])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith(f"usage: deepsphere-gen {command} {words[0]} "), err
    assert err.endswith(f"\ndeepsphere-gen {command} {words[0]}: error: unrecognized arguments: {bad}{hint}\n"), err


@pytest.mark.parametrize("command", ["massmaps", "cosmo"])
@pytest.mark.parametrize("words, bad, hint", [
    (["--nsidee", "64", "train"], "--nsidee", " (did you mean --nside?)"),
    (["--nsidee", "64"], "--nsidee", " (did you mean --nside?)"),  # no step: run
    (["--seed", "1", "--epohcs=3", "train"], "--epohcs=3", " (did you mean --epochs?)"),
    (["--zzz", "x", "--qiuck", "run"], "--zzz --qiuck", " (did you mean --quick?)"),
])
def test_a_mistyped_option_before_the_step_is_named(command, words, bad, hint, capsys):
    """``massmaps --nsidee 64 train`` was refused with "argument STEP: invalid choice: '64'": argparse took the
    mistyped option's value for the step.  Now the option itself is named, with the command's usage."""
    from deepsphere_gen.cli import parse_args

    with pytest.raises(SystemExit) as exit_:
        parse_args([command, *words])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.endswith(f"\ndeepsphere-gen {command}: error: unrecognized arguments: {bad}{hint}\n"), err


def test_a_mistyped_option_is_named_before_a_missing_required_one(capsys):
    """``bench --onyl x`` said "the following arguments are required: --json", not a word on --onyl."""
    from deepsphere_gen.cli import parse_args

    with pytest.raises(SystemExit) as exit_:
        parse_args(["bench", "--onyl", "chebconv"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.endswith("\ndeepsphere-gen bench: error: unrecognized arguments: --onyl (did you mean --only?)\n"), err


def test_classify_options_before_the_step_are_read():
    """``massmaps --field 0 classify a.fits``: "argument STEP: invalid choice: '0'"; ``massmaps --force classify``:
    "unrecognized arguments"."""
    from deepsphere_gen.cli import parse_args

    args = parse_args(["massmaps", "--field", "1", "--force", "--method", "cnn", "classify", "a.fits"])
    assert (args.step, args.maps, args.field, args.force, args.method) == ("classify", ["a.fits"], 1, True, "cnn")
    args = parse_args(["massmaps", "--checkpoint", "a.pt", "b.pt", "classify", "m.fits"])
    assert (args.step, args.maps, args.checkpoint) == ("classify", ["m.fits"], ["a.pt", "b.pt"])


@pytest.mark.parametrize("argv, message", [
    (["--field", "0", "train"], "--field does not apply to train: only to classify"),
    (["train", "--force"], "--force does not apply to train: only to classify"),
    (["--checkpoint", "a.pt", "evaluate"], "--checkpoint does not apply to evaluate: only to classify"),
    (["--method", "fcn"], "--method does not apply to run: only to classify"),
    (["classify", "--nside", "8", "m.fits"], "in the checkpoints, found under --out-dir); --nside does not apply to "
     "classify: the networks'"),  # was: unrecognized
    (["classify", "m.fits", "--no-plots"], "--no-plots does not apply to classify: only to evaluate and run"),
    (["classify", "m.fits", "--nside", "8", "--no-plots"],  # one line naming both (was: --no-plots, then on a rerun --nside)
     "--no-plots does not apply to classify: only to evaluate and run; --data-dir does not apply to classify: classify reads no data set"),
    # display and process options: their own reason (was: "the networks' settings come from their checkpoints")
    (["classify", "--no-progress", "m.fits"], "--no-progress does not apply to classify: classify draws no progress bars"),
    (["classify", "m.fits", "--workers", "2", "--nside", "8"], "--workers does not apply to classify: classify runs in one "
     "process (--workers sets the run step's processes); --data-dir does not apply to classify: classify reads no data set"),
])
def test_massmaps_options_of_another_step_are_refused_wherever_they_stand(argv, message, capsys, tmp_path):
    """Refused before any work (``--device nope``: without the refusal the command would end at its device check)."""
    from ._cli import refused

    where = ["--device", "nope", "--data-dir", str(tmp_path / "d"), "--out-dir", str(tmp_path / "o")]
    refused("massmaps", [*argv, *where], capsys, message)


def test_classify_help_names_only_what_classify_does(capsys):
    """classify's --out-dir help spoke of plots and --json, which classify has not."""
    from deepsphere_gen.cli import main

    with pytest.raises(SystemExit):
        main(["massmaps", "classify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--out-dir OUT_DIR the output folder of `massmaps train`, whose checkpoints are searched" in text, text
    assert "plots" not in text and "--json" not in text
