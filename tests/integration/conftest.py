import pytest

from harness import Broker, cleanup_all


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
    cleanup_all(made)


@pytest.fixture
def make_sim():
    from harness import Simulator
    made = []

    def make(system="CMS-A", args=(), ca=None, client_cert=None):
        s = Simulator(system, args, ca, client_cert)
        made.append(s)
        return s

    yield make
    cleanup_all(made)


AGENTS = (("alice", "agent", "CMS-A"), ("bob", "agent", "CMS-A"), ("carol", "agent", "CMS-B"),
          ("sue", "supervisor", "CMS-A"))


@pytest.fixture
def make_loop(make_sim, make_broker):
    """Makes two commbroker-cmss (CMS-A, CMS-B) and a commbrokerd with a desktop listener,
    subscribed to both; keyword arguments go to the Broker (limits, grace, extra, …)."""
    from harness import wait_for

    def make(**kwargs):
        sim = make_sim("CMS-A")
        sim_b = make_sim("CMS-B")
        options = dict(cms_urls={"CMS-A": sim.url, "CMS-B": sim_b.url}, systems=("CMS-A", "CMS-B"),
                       agents=AGENTS, desktop=True, probe="200ms")
        options.update(kwargs)
        broker = make_broker(**options).start()
        wait_for(lambda: sim.state()["subscribed"] and sim_b.state()["subscribed"],
                 what="the broker subscribes at both simulators")
        broker.sim = sim
        broker.sim_b = sim_b
        return broker

    return make


@pytest.fixture
def loop(make_loop):
    return make_loop()
