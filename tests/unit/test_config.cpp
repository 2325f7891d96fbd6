#include "config/config.hpp"
#include "config/password.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

using namespace cb::config;

namespace {

std::string all_errors(const ParseResult& r) {
    std::string s;
    for (auto& e : r.errors)
        s += e + "\n";
    return s;
}

}  // namespace

TEST_CASE("a minimal config gets every default") {
    auto r = parse(R"(<commbroker>
  <listen service="ici" address="127.0.0.1" port="0"/>
  <journal path="/tmp/j.db"/>
</commbroker>)",
                   "c.xml");
    REQUIRE_MESSAGE(r.config, all_errors(r));
    CHECK(r.config->journal.sync == Sync::full);
    CHECK(r.config->limits.max_body_bytes == 65536);
    CHECK(r.config->limits.ended_item_retention == std::chrono::hours(1));
    CHECK(r.config->node.id == "broker-1");
    REQUIRE(r.config->heartbeat_profiles.size() == 1);
    CHECK(r.config->heartbeat_profiles[0].id == "default");
}

TEST_CASE("every error is reported at once, each with its line") {
    auto r = parse(R"(<commbroker>
  <listen service="ici" address="127.0.0.1" port="70000"/>
  <journal path="/tmp/j.db" sync="sometimes"/>
  <limits maxBodyBytes="12" maxXmlDept="3"/>
  <cms id="A" url="http://x:1/cms" inboundUser="a" inboundPasswordHash="plain"/>
  <agent id="alice" passwordHash="pbkdf2-sha256$1000$c2FsdA==$aGFzaA==" cms="B"/>
  <bogus/>
</commbroker>)",
                   "c.xml");
    CHECK_FALSE(r.config);
    auto text = all_errors(r);
    CHECK(text.find("c.xml:2: port=70000 is out of range") != std::string::npos);
    CHECK(text.find("c.xml:3: sync=\"sometimes\" must be one of full | normal") !=
          std::string::npos);
    CHECK(text.find("c.xml:4: maxBodyBytes=12 is out of range") != std::string::npos);
    CHECK(text.find("c.xml:4: unknown attribute maxXmlDept") != std::string::npos);
    CHECK(text.find("c.xml:5: inboundPasswordHash:") != std::string::npos);
    CHECK(text.find("c.xml:6: passwordHash: at least 10000 iterations") != std::string::npos);
    CHECK(text.find("c.xml:6: agent alice: no <cms id=\"B\">") != std::string::npos);
    CHECK(text.find("c.xml:7: unknown element <bogus>") != std::string::npos);
    CHECK(r.errors.size() == 8);
}

TEST_CASE("a config without a journal or listener is refused") {
    auto r = parse("<commbroker/>", "c.xml");
    CHECK_FALSE(r.config);
    CHECK(all_errors(r).find("missing <journal") != std::string::npos);
    CHECK(all_errors(r).find("at least one <listen>") != std::string::npos);
}

TEST_CASE("durations") {
    CHECK(parse_duration("250ms") == Duration(250));
    CHECK(parse_duration("5s") == std::chrono::seconds(5));
    CHECK(parse_duration("2m") == std::chrono::minutes(2));
    CHECK(parse_duration("7d") == std::chrono::hours(168));
    CHECK(parse_duration("12000d") == std::chrono::hours(24 * 12000));
    CHECK_FALSE(parse_duration("13000d"));         // over 2^40 ms
    CHECK_FALSE(parse_duration("200000000000d"));  // would wrap
    CHECK_FALSE(parse_duration("5"));
    CHECK_FALSE(parse_duration("s"));
    CHECK_FALSE(parse_duration("5 s"));
    CHECK(format_duration(std::chrono::hours(1)) == "1h");
}

TEST_CASE("password hashes verify the right password only") {
    auto h = hash_password("secret", 10000);
    CHECK_FALSE(check_password_hash(h));
    CHECK(verify_password("secret", h));
    CHECK_FALSE(verify_password("Secret", h));
    CHECK_FALSE(verify_password("secret", "pbkdf2-sha256$10000$AAAA$AAAA"));
    CHECK(check_password_hash("sha1$1$a$b"));
}

TEST_CASE("reload names the settings that need a restart") {
    auto a = parse(
        R"(<commbroker><listen service="ici" address="127.0.0.1" port="1"/><journal path="/a"/></commbroker>)",
        "a");
    auto b = parse(
        R"(<commbroker><listen service="ici" address="127.0.0.1" port="2"/><journal path="/a"/>
                      <limits maxBodyBytes="2048"/></commbroker>)",
        "b");
    REQUIRE(a.config);
    REQUIRE(b.config);
    auto kept = reload_diff(*a.config, *b.config);
    REQUIRE(kept.size() == 1);
    CHECK(kept[0] == "listen");
}

TEST_CASE("reload names a changed CMS link, and the desktop limits parse with their bounds") {
    auto text = [](const char* url, const char* limits) {
        return std::string(R"(<commbroker><listen service="ici" address="127.0.0.1" port="1"/>)") +
               R"(<journal path="/a"/><limits )" + limits + R"(/><cms id="A" url=")" + url +
               R"(" connections="2"/></commbroker>)";
    };
    auto a = parse(text("http://127.0.0.1:1/cms", R"(desktopSlowTimeout="2s")"), "a");
    auto b = parse(text("http://127.0.0.1:2/cms", R"(desktopSlowTimeout="2s")"), "b");
    REQUIRE(a.config);
    REQUIRE(b.config);
    CHECK(a.config->cms[0].connections == 2);
    CHECK(a.config->limits.desktop_slow_timeout == std::chrono::seconds(2));
    auto kept = reload_diff(*a.config, *b.config);
    REQUIRE(kept.size() == 1);
    CHECK(kept[0].rfind("cms", 0) == 0);
    auto bad = parse(text("http://127.0.0.1:1/cms", R"(desktopSlowTimeout="1ms")"), "c");
    CHECK_FALSE(bad.config);
}

TEST_CASE("a CMS's largest response is a bounded setting that needs a restart") {
    auto text = [](const char* bytes) {
        return std::string(R"(<commbroker><listen service="ici" address="127.0.0.1" port="1"/>)") +
               R"(<journal path="/a"/><cms id="A" url="http://127.0.0.1:1/cms" )" +
               (bytes ? std::string("maxResponseBytes=\"") + bytes + "\"" : std::string()) +
               R"(/></commbroker>)";
    };
    auto plain = parse(text(nullptr), "plain");
    REQUIRE(plain.config);
    CHECK(plain.config->cms[0].max_response_bytes == 64u * 1024 * 1024);
    auto big = parse(text("1073741824"), "big");
    REQUIRE(big.config);
    CHECK(big.config->cms[0].max_response_bytes == 1024u * 1024 * 1024);
    CHECK(!reload_diff(*plain.config, *big.config).empty());
    CHECK(!parse(text("1024"), "small").config);  // below 64 KiB
    CHECK(!parse(text("lots"), "word").config);
}

TEST_CASE("the desktop connections' threads: as many as the I/O threads unless set") {
    auto text = [](const char* node) {
        return std::string(R"(<commbroker><listen service="ici" address="127.0.0.1" port="1"/>)") +
               R"(<journal path="/a"/>)" + node + "</commbroker>";
    };
    auto plain = parse(text(""), "plain");
    REQUIRE(plain.config);
    CHECK(plain.config->node.desktop_threads == 0);
    CHECK(plain.config->node.desktop_nice == 0);
    auto four =
        parse(text(R"(<node id="b" threads="2" desktopThreads="4" desktopNice="5"/>)"), "four");
    REQUIRE_MESSAGE(four.config, all_errors(four));
    CHECK(four.config->node.desktop_threads == 4);
    CHECK(four.config->node.desktop_nice == 5);
    auto kept = reload_diff(*plain.config, *four.config);
    CHECK(std::find(kept.begin(), kept.end(), "node.desktopThreads") != kept.end());
    CHECK(std::find(kept.begin(), kept.end(), "node.desktopNice") != kept.end());
    CHECK_FALSE(parse(text(R"(<node id="b" desktopNice="20"/>)"), "nicer").config);
    CHECK_FALSE(parse(text(R"(<node id="b" desktopThreads="257"/>)"), "many").config);
    CHECK_FALSE(parse(text(R"(<node id="b" desktopThreads="two"/>)"), "word").config);
}

TEST_CASE("the journal's backend and the age that makes an untouched item an orphan") {
    auto text = [](const char* journal, const char* recovery) {
        return std::string(R"(<commbroker><listen service="ici" address="127.0.0.1" port="1"/>)") +
               R"(<journal path="/a" )" + journal + "/>" + recovery + "</commbroker>";
    };
    auto plain = parse(text("", ""), "plain");
    REQUIRE(plain.config);
    CHECK(plain.config->journal.backend == JournalBackend::sqlite);
    CHECK(plain.config->recovery.orphan_after == std::chrono::hours(8));
    auto never = parse(text(R"(backend="sqlite")", R"(<recovery orphanAfter="0s"/>)"), "never");
    REQUIRE_MESSAGE(never.config, all_errors(never));
    CHECK(never.config->recovery.orphan_after == Duration::zero());
    CHECK(reload_diff(*plain.config, *never.config).empty());  // applies live

    auto other = parse(text(R"(backend="postgresql")", ""), "other");
    CHECK_FALSE(other.config);
    CHECK(all_errors(other).find("backend=\"postgresql\" must be one of sqlite") !=
          std::string::npos);
    auto tiny = parse(text("", R"(<recovery orphanAfter="10ms"/>)"), "tiny");
    CHECK_FALSE(tiny.config);
    CHECK(all_errors(tiny).find("orphanAfter must be 0 (never) or at least 1s") !=
          std::string::npos);
    CHECK_FALSE(parse(text("", R"(<recovery orphanAfter="2h" bogus="1"/>)"), "typo").config);
    CHECK_FALSE(parse(text("", R"(<recovery/><recovery/>)"), "twice").config);
}

TEST_CASE("an admin socket open to every user of the machine is refused") {
    auto text = [](const char* mode) {
        return std::string(R"(<commbroker><listen service="ici" address="127.0.0.1" port="1"/>)") +
               R"(<journal path="/a"/><adminSocket path="/run/a.sock" mode=")" + mode +
               R"("/></commbroker>)";
    };
    CHECK(parse(text("0600"), "owner").config);
    CHECK(parse(text("0660"), "group").config);
    for (auto* mode : {"0666", "0777", "0602", "0604"}) {
        auto r = parse(text(mode), "open");
        CHECK_FALSE(r.config);
        CHECK(all_errors(r).find("gives every user of the machine the admin API") !=
              std::string::npos);
    }
    CHECK(all_errors(parse(text("0060"), "no owner")).find("broker's own user") !=
          std::string::npos);
}

TEST_CASE("the admission limits and the logon guard parse with their bounds") {
    auto text = [](const std::string& extra) {
        return R"(<commbroker><listen service="ici" address="127.0.0.1" port="1"/>)"
               R"(<journal path="/a"/>)" +
               extra + "</commbroker>";
    };
    auto plain = parse(text(""), "plain");
    REQUIRE(plain.config);
    auto& d = *plain.config;
    CHECK(d.limits.max_connections_per_address == 1000);
    CHECK(d.limits.hello_timeout == std::chrono::seconds(5));
    CHECK(d.limits.desktop_idle_timeout == std::chrono::minutes(5));
    CHECK(d.admin_socket.max_connections == 64);
    CHECK(d.logon_guard.free_failures == 3);
    CHECK(d.logon_guard.lock_after == 10);
    CHECK(d.logon_guard.lock_for == std::chrono::minutes(1));

    auto set =
        parse(text(R"(<limits maxConnections="50" maxConnectionsPerAddress="0" helloTimeout="2s" )"
                   R"(desktopIdleTimeout="30s"/>)"
                   R"(<logonGuard freeFailures="0" firstDelay="100ms" maxDelay="1s" lockAfter="5" )"
                   R"(lockFor="10m" forgetAfter="1h"/>)"
                   R"(<cms id="A" url="http://127.0.0.1:1/cms" maxQueuedRequests="10"/>)"),
              "set");
    REQUIRE_MESSAGE(set.config, all_errors(set));
    auto& c = *set.config;
    CHECK(c.limits.max_connections_per_address == 0);
    CHECK(c.limits.hello_timeout == std::chrono::seconds(2));
    CHECK(c.limits.desktop_idle_timeout == std::chrono::seconds(30));
    CHECK(c.logon_guard.free_failures == 0);
    CHECK(c.logon_guard.max_delay == std::chrono::seconds(1));
    CHECK(c.logon_guard.lock_for == std::chrono::minutes(10));
    CHECK(c.cms[0].max_queued_requests == 10);
    // These apply to the next connection and logon: nothing to restart for.
    CHECK(reload_diff(d, c).size() == 1);  // the new CMS link only
    CHECK(reload_diff(d, c)[0].rfind("cms", 0) == 0);

    auto bad = parse(text(R"(<logonGuard firstDelay="2s" maxDelay="1s"/>)"), "bad");
    CHECK(all_errors(bad).find("maxDelay must be at least firstDelay") != std::string::npos);
    CHECK_FALSE(parse(text(R"(<logonGuard lockAfter="0"/>)"), "zero").config);
    CHECK_FALSE(parse(text(R"(<logonGuard/><logonGuard/>)"), "twice").config);
    CHECK_FALSE(parse(text(R"(<logonGuard lockfor="1m"/>)"), "typo").config);
    CHECK_FALSE(parse(text(R"(<limits helloTimeout="10ms"/>)"), "short").config);

    // A chat's postings are bounded in memory and in the journal alike: a restart changes it.
    auto chats = parse(text(R"(<limits maxChatPostings="50"/>)"), "chats");
    REQUIRE(chats.config);
    CHECK(chats.config->limits.max_chat_postings == 50);
    CHECK(reload_diff(d, *chats.config) == std::vector<std::string>{"limits.maxChatPostings"});
    CHECK_FALSE(parse(text(R"(<limits maxChatPostings="0"/>)"), "none").config);
}

TEST_CASE("TLS files: resolved against the config's directory, readable, and for https only") {
    auto dir = std::filesystem::temp_directory_path() /
               ("commbroker-config-tls-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    for (auto name : {"tls.crt", "tls.key", "ca.pem"})
        std::ofstream(dir / name) << "PEM\n";
    auto source = (dir / "commbroker.xml").string();
    auto text = [](const std::string& listen, const std::string& cms) {
        return R"(<commbroker><listen service="ici" address="127.0.0.1" port="1" )" + listen +
               R"(/><journal path="/a"/>)" + cms + "</commbroker>";
    };

    auto ok = parse(text(R"(tlsCertificate="tls.crt" tlsKey="tls.key")",
                         R"(<cms id="A" url="https://cms.example/ici" tlsCaFile="ca.pem" )"
                         R"(tlsCertificate="tls.crt" tlsKey="tls.key"/>)"),
                    source);
    REQUIRE_MESSAGE(ok.config, all_errors(ok));
    CHECK(ok.config->listens[0].tls_certificate == (dir / "tls.crt").string());
    CHECK(ok.config->listens[0].tls_key == (dir / "tls.key").string());
    CHECK(ok.config->cms[0].tls_ca_file == (dir / "ca.pem").string());
    CHECK(ok.config->limits.tls_handshake_timeout == std::chrono::seconds(10));

    auto missing = parse(text(R"(tlsCertificate="tls.crt" tlsKey="gone.key")", ""), source);
    CHECK(all_errors(missing).find("tlsKey " + (dir / "gone.key").string() + " cannot be read") !=
          std::string::npos);
    auto alone = parse(text(R"(tlsCertificate="tls.crt")", ""), source);
    CHECK(all_errors(alone).find("tlsCertificate and tlsKey go together") != std::string::npos);
    auto plain_cms =
        parse(text("", R"(<cms id="A" url="http://cms.example/ici" tlsCaFile="ca.pem"/>)"), source);
    CHECK(all_errors(plain_cms).find("need an https:// url") != std::string::npos);
    auto ftp = parse(text("", R"(<cms id="A" url="ftp://cms.example/ici"/>)"), source);
    CHECK(all_errors(ftp).find("url must start with http:// or https://") != std::string::npos);

    // A listener's certificate paths, like its address, wait for a restart; a CMS's TLS files too.
    auto moved = parse(text(R"(tlsCertificate="ca.pem" tlsKey="tls.key")",
                            R"(<cms id="A" url="https://cms.example/ici"/>)"),
                       source);
    REQUIRE_MESSAGE(moved.config, all_errors(moved));
    auto kept = reload_diff(*ok.config, *moved.config);
    CHECK(std::find(kept.begin(), kept.end(), "listen") != kept.end());
    CHECK(std::any_of(kept.begin(), kept.end(),
                      [](const std::string& k) { return k.rfind("cms", 0) == 0; }));
    std::filesystem::remove_all(dir);
}
