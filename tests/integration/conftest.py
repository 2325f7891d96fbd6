import pytest

from harness import Broker


@pytest.fixture
def broker():
    b = Broker().start()
    yield b
    b.cleanup()


@pytest.fixture
def make_broker():
    made = []

    def make(**kwargs):
        b = Broker(**kwargs)
        made.append(b)
        return b

    yield make
    for b in made:
        b.cleanup()
