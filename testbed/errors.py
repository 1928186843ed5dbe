"""The one exception type the testbed raises."""


class TestbedError(Exception):
    """The testbed could not do what was asked; the message says why."""

    __test__ = False  # not a pytest test class despite the name
