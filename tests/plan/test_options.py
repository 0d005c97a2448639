import pytest

from attnbench.errors import AttnbenchError
from attnbench.plan.values import parse_dtype, parse_param, parse_size, parse_sizes


def test_sizes_lists_suffixes_and_doubling_ranges():
    assert parse_size("4096") == 4096
    assert parse_size("4k") == 4096
    assert parse_sizes("1k..8k") == [1024, 2048, 4096, 8192]
    assert parse_sizes("256,1k,256") == [256, 1024]
    assert parse_sizes("300..1000") == [300, 600]


@pytest.mark.parametrize("text", ["0", "-5", "abc", "1.5", "", "k", "4..2"])
def test_bad_sizes_are_one_line_errors(text):
    with pytest.raises(AttnbenchError) as err:
        parse_sizes(text)
    assert "\n" not in str(err.value)


def test_params_and_dtypes():
    assert parse_param("features=64, 128") == ("features", ["64", "128"])
    with pytest.raises(AttnbenchError):
        parse_param("features")
    assert parse_dtype("fp16") == "float16"
    with pytest.raises(AttnbenchError, match="float32"):
        parse_dtype("int8")
