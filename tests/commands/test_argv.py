"""``commands._argv.step_out_of_lists``: a step name after a list option's values ends the list."""
from deepsphere_gen.commands._argv import step_out_of_lists

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
