"""The journal over process lifetimes: kill -9, restart, damaged files, config checks, reload."""
import hashlib
import os
import signal
import subprocess
import threading
import time

from harness import CTL, DAEMON, Broker, call_xml, check_tool_output, envelope, status_of, wait_for


def test_every_accepted_event_survives_kill_9(make_broker):
    b = make_broker(sync="full").start()
    accepted = {}  # item id -> highest version answered "accepted"
    lock = threading.Lock()
    stop = threading.Event()

    def sender(worker):
        version = 0
        while not stop.is_set():
            version += 1
            item = f"w{worker}-c{version % 5}"
            state = "alerting" if version <= 5 else "connected"
            try:
                status, _, text = b.soap(envelope(call_xml(id=item, version=version, state=state)))
            except OSError:
                return  # the daemon is gone
            if status == 200 and status_of(text) == "accepted":
                with lock:
                    accepted[item] = max(accepted.get(item, 0), version)

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    wait_for(lambda: len(accepted) >= 20 and sum(accepted.values()) > 400, timeout=30, what="traffic")
    b.send_signal(signal.SIGKILL)
    b.proc.wait()
    stop.set()
    for t in threads:
        t.join()
    b.start()
    held = {i["id"]: i["version"] for i in b.items()}
    missing = {k: v for k, v in accepted.items() if held.get(k, 0) < v}
    assert not missing, f"accepted but lost after kill -9: {missing}"
    assert len(accepted) >= 20


def test_items_survive_a_graceful_restart_and_sigterm_exits_cleanly(make_broker):
    b = make_broker().start()
    b.soap(envelope(call_xml(id="keep", version=7, state="connected")))
    b.soap(envelope(call_xml(id="gone", version=1)))
    b.soap(envelope(call_xml(id="gone", version=2, state="disconnected")))
    assert b.stop(signal.SIGTERM) == 0
    assert "stopped" in b.log_text()
    assert not os.path.exists(b.socket_path)
    b.start()
    assert [(i["id"], i["version"]) for i in b.items()] == [("keep", 7)]
    # The ended call is still remembered: a late snapshot of it is stale, not a new call.
    assert status_of(b.soap(envelope(call_xml(id="gone", version=1)))[2]) == "stale"


def test_a_damaged_journal_is_refused_at_start_and_left_untouched(make_broker):
    b = make_broker()
    with open(b.journal_path, "wb") as f:
        f.write(b"SQLite format 3\x00" + b"\x5a" * 8192)
    before = hashlib.sha256(open(b.journal_path, "rb").read()).hexdigest()
    b.start(expect_ready=False)
    assert b.proc.wait(timeout=10) == 1
    assert "journal" in b.log_text() and "left untouched" in b.log_text()
    assert hashlib.sha256(open(b.journal_path, "rb").read()).hexdigest() == before


def test_a_foreign_file_is_refused(make_broker):
    b = make_broker()
    with open(b.journal_path, "w") as f:
        f.write("not a database\n")
    b.start(expect_ready=False)
    assert b.proc.wait(timeout=10) == 1
    assert "not a commbroker journal" in b.log_text()
    assert open(b.journal_path).read() == "not a database\n"


def test_check_config_reports_every_error_with_its_line(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text('<commbroker>\n  <listen service="ici" address="127.0.0.1" port="99999"/>\n'
                   '  <journal path="/tmp/x.db" sync="often"/>\n  <limitz/>\n</commbroker>\n')
    out = check_tool_output("commbrokerd --check-config",
                            subprocess.run([DAEMON, "--config", str(bad), "--check-config"],
                                           capture_output=True, text=True))
    assert out.returncode == 1
    assert f"{bad}:2: port=99999 is out of range" in out.stderr
    assert f"{bad}:3: sync=\"often\"" in out.stderr
    assert f"{bad}:4: unknown element <limitz>" in out.stderr
    b = Broker()
    try:
        ctl = b.ctl("check-config", str(bad))
        assert ctl.returncode == 1 and f"{bad}:4:" in ctl.stderr
        good = b.ctl("check-config", b.config_path)
        assert good.returncode == 0, good.stderr
    finally:
        b.cleanup()


def test_reload_applies_new_settings_and_names_what_needs_a_restart(make_broker):
    b = make_broker().start()
    big = envelope(call_xml(extra="<queue>" + "q" * 1500 + "</queue>"))
    assert b.soap(big)[0] == 200
    text = open(b.config_path).read()
    b.write_config(text.replace('maxBodyBytes="16384"', 'maxBodyBytes="1024"').replace('sync="normal"', 'sync="full"'))
    out = b.ctl("reload")
    assert out.returncode == 0, out.stderr
    assert "journal.sync" in out.stdout
    assert b.soap(big)[0] == 413  # the new body limit is live
    b.write_config(text.replace("<journal", "<journl"))
    out = b.ctl("reload")
    assert out.returncode == 1 and "unknown element <journl>" in out.stderr
    b.write_config(text)
    b.send_signal(signal.SIGHUP)
    wait_for(lambda: b.soap(big)[0] == 200, what="SIGHUP reload")


def test_commbrokerctl_usage_and_failure_exit_statuses(broker):
    assert broker.ctl("frobnicate").returncode == 2
    assert broker.ctl("items", "--colour", "red").returncode == 2
    bad = broker.ctl("items", "--channel", "fax")
    assert bad.returncode == 1 and "channel" in bad.stderr
    gone = check_tool_output("commbrokerctl", subprocess.run(
        [CTL, "--socket", "/nonexistent/admin.sock", "status"], capture_output=True, text=True))
    assert gone.returncode == 1 and "cannot reach" in gone.stderr
    out = broker.ctl("status")
    assert out.returncode == 0 and "ready        yes" in out.stdout


def test_a_journal_moved_away_under_load_stops_acknowledgements_and_a_restart_refuses(make_broker):
    import sqlite3
    b = make_broker(sync="normal").start()
    accepted = set()
    refused = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(worker):
        n = 0
        while not stop.is_set():
            n += 1
            item = f"w{worker}-c{n}"
            try:
                status, _, text = b.soap(envelope(call_xml(id=item)))
            except OSError:
                return
            with lock:
                if status == 200 and status_of(text) == "accepted":
                    accepted.add(item)
                elif status == 503:
                    refused.append(item)

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: len(accepted) >= 200, timeout=30, what="traffic")
    # The operator's mistake: the journal goes somewhere else while the broker writes it.
    moved = os.path.join(b.dir, "moved")
    os.mkdir(moved)
    for suffix in ("", "-wal", "-shm"):
        os.rename(b.journal_path + suffix, os.path.join(moved, "journal.db" + suffix))
    noticed = time.monotonic()
    wait_for(lambda: not b.status()["journal"]["healthy"], timeout=5, what="the journal noticed gone")
    assert time.monotonic() - noticed < 1.5
    wait_for(lambda: len(refused) >= 20, timeout=10, what="events refused")
    stop.set()
    for t in threads:
        t.join()
    status = b.status()
    assert status["ready"] is False and status["journal"]["state"] == "lost"
    code, text = b.admin_get_text("/readyz")
    assert code == 503 and "journal lost" in text
    code, text = b.admin_get_text("/healthz")
    assert code == 503 and "journal lost" in text
    b.send_signal(signal.SIGKILL)
    b.proc.wait()
    b.log.close()
    # Every acknowledged event is in the journal that was there.
    db = sqlite3.connect(os.path.join(moved, "journal.db"))
    held = {row[0] for row in db.execute("SELECT id FROM items")}
    db.close()
    lost = accepted - held
    assert not lost, f"{len(lost)} acknowledged events are not in the moved journal"
    # A restart does not start over with an empty journal without being told to.
    b.start(expect_ready=False)
    assert b.proc.wait(timeout=15) == 1
    assert "the journal is missing" in b.log_text() and "--start-empty" in b.log_text()
    assert not os.path.exists(b.journal_path)


def test_a_full_disk_is_refused_with_503_and_the_broker_accepts_again_on_its_own(make_broker):
    faults = os.environ.get("COMMBROKER_WRITE_FAULTS")
    assert faults and os.path.exists(faults), "run through ctest: the write-fault library is needed"
    b = make_broker(sync="full", journal_attrs='retryDelay="20ms" retryMaxDelay="200ms" unhealthyAfter="1s"')
    flag = os.path.join(b.dir, "disk-full")
    b.env.update(LD_PRELOAD=faults, COMMBROKER_WRITE_FAULT=flag,
                 ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
    b.start()
    assert status_of(b.soap(envelope(call_xml(id="before", version=1)))[2]) == "accepted"

    open(flag, "w").close()  # the disk is full from now on
    status, headers, text = b.soap(envelope(call_xml(id="during", version=1)))
    assert status == 503 and "Retry-After" in headers
    assert "unavailable" in text
    status, _, _ = b.soap(envelope(call_xml(id="refused", version=1)))
    assert status == 503
    code, text = b.admin_get_text("/readyz")
    assert code == 503 and "journal retrying" in text
    # Failing for longer than unhealthyAfter: the broker asks to be restarted.
    wait_for(lambda: b.admin_get_text("/healthz")[0] == 503, timeout=5, what="/healthz failing")
    assert "journal failing" in b.admin_get_text("/healthz")[1]

    os.unlink(flag)  # room again
    wait_for(lambda: b.status()["journal"]["healthy"], timeout=5, what="the journal recovering")
    assert b.admin_get_text("/healthz")[0] == 200 and b.admin_get_text("/readyz")[0] == 200
    # The CMS retries what was refused: the event that was applied before the failure is now
    # durable and answered as such; the one that was never applied is accepted now.
    assert status_of(b.soap(envelope(call_xml(id="during", version=1)))[2]) == "duplicate"
    assert status_of(b.soap(envelope(call_xml(id="refused", version=1)))[2]) == "accepted"
    assert status_of(b.soap(envelope(call_xml(id="after", version=1)))[2]) == "accepted"
    log = b.log_text()
    assert log.count("commit failed") == 1, "one line when the journal starts failing, not one per event"
    assert "commits succeed again" in log
    b.stop(signal.SIGKILL)
    b.start()
    assert sorted(i["id"] for i in b.items()) == ["after", "before", "during", "refused"]


def journal_with_a_call(make_broker):
    """A broker that ran, took one call and stopped cleanly: its journal files are the fixture."""
    b = make_broker(sync="full").start()
    assert status_of(b.soap(envelope(call_xml(id="c-1", version=1)))[2]) == "accepted"
    b.stop()
    return b


def digests(*paths):
    return {p: hashlib.sha256(open(p, "rb").read()).hexdigest() if os.path.exists(p) else None for p in paths}


def refused(b, *words):
    b.start(expect_ready=False)
    assert b.proc.wait(timeout=10) == 1
    log = b.log_text()
    assert b.journal_path in log, log  # where
    for w in words:  # why
        assert w in log, log


def test_a_truncated_journal_is_refused_and_left_as_it_was(make_broker):
    b = journal_with_a_call(make_broker)
    size = os.path.getsize(b.journal_path)
    with open(b.journal_path, "r+b") as f:
        f.truncate(size // 2 if size > 8192 else 4096 + 100)
    before = digests(b.journal_path, b.journal_path + "-wal")
    refused(b, "damaged journal", "left untouched")
    assert digests(b.journal_path, b.journal_path + "-wal") == before


def test_a_journal_of_a_newer_schema_is_refused_and_left_as_it_was(make_broker):
    import sqlite3
    b = journal_with_a_call(make_broker)
    db = sqlite3.connect(b.journal_path)
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    before = digests(b.journal_path, b.journal_path + "-wal")
    refused(b, "newer commbroker", "schema 99", "left untouched")
    assert digests(b.journal_path, b.journal_path + "-wal") == before


def test_a_leftover_wal_without_its_database_is_refused_and_kept(make_broker):
    b = make_broker(sync="full").start()
    assert status_of(b.soap(envelope(call_xml(id="c-1", version=1)))[2]) == "accepted"
    b.send_signal(signal.SIGKILL)  # the WAL is not folded in
    b.proc.wait()
    wal = b.journal_path + "-wal"
    assert os.path.getsize(wal) > 0
    os.unlink(b.journal_path)
    os.unlink(b.journal_path + ".created")  # even where no marker says a journal was kept
    before = digests(wal)
    refused(b, "WAL", "missing", "--start-empty")
    assert digests(wal) == before and not os.path.exists(b.journal_path)


def test_a_leftover_wal_beside_its_database_is_recovered_after_kill_9(make_broker):
    b = make_broker(sync="full").start()
    assert status_of(b.soap(envelope(call_xml(id="c-1", version=1)))[2]) == "accepted"
    b.send_signal(signal.SIGKILL)
    b.proc.wait()
    assert os.path.getsize(b.journal_path + "-wal") > 0
    b.start()
    assert [i["id"] for i in b.items()] == ["c-1"]
