#include "daemon/logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>

namespace cb::daemon {

void setup_logging(config::LogTarget target, const std::string& level) {
    std::shared_ptr<spdlog::logger> logger;
    if (target == config::LogTarget::journald) {
        logger = std::make_shared<spdlog::logger>(
            "commbrokerd", std::make_shared<spdlog::sinks::systemd_sink_mt>());
        logger->set_pattern("%v");
    } else {
        logger = std::make_shared<spdlog::logger>(
            "commbrokerd", std::make_shared<spdlog::sinks::stderr_sink_mt>());
        logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
    }
    spdlog::set_default_logger(logger);
    set_log_level(level);
    spdlog::flush_on(spdlog::level::info);
}

void set_log_level(const std::string& level) {
    spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace cb::daemon

namespace cb::daemon {

bool LogLimit::allow(std::uint64_t& left_out, std::chrono::steady_clock::time_point now) {
    std::lock_guard lock(mutex_);
    if (now - since_ >= window_) {
        since_ = now;
        written_ = 0;
    }
    if (written_ >= per_window_) {
        ++left_out_;
        return false;
    }
    ++written_;
    left_out = left_out_;
    left_out_ = 0;
    return true;
}

std::string left_out_note(std::uint64_t left_out) {
    if (left_out == 0) return {};
    return " (" + std::to_string(left_out) + " more like it left out)";
}

}  // namespace cb::daemon
