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
