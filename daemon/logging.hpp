// The log facade: spdlog, to stderr or to journald. Every line about an item or agent names it.
#pragma once

#include "config/config.hpp"

#include <string>

namespace cb::daemon {

void setup_logging(config::LogTarget target, const std::string& level);
void set_log_level(const std::string& level);

}  // namespace cb::daemon
