// The log facade: spdlog, to stderr or to journald. Every line about an item or agent names it.
#pragma once

#include "config/config.hpp"

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace cb::daemon {

void setup_logging(config::LogTarget target, const std::string& level);
void set_log_level(const std::string& level);

/// A log line that clients can make repeat at their own pace (a bad frame, a fault): at most
/// `per_window` lines per `window` from one call site, and the next line written after a quiet
/// spell says how many were left out. Thread-safe. Usage:
///     static LogLimit limit;
///     if (std::uint64_t left_out = 0; limit.allow(left_out))
///         spdlog::info("...{}", ..., left_out_note(left_out));
class LogLimit {
  public:
    explicit LogLimit(unsigned per_window = 20,
                      std::chrono::seconds window = std::chrono::seconds(60))
        : per_window_(per_window), window_(window) {}
    bool allow(std::uint64_t& left_out) {
        return allow(left_out, std::chrono::steady_clock::now());
    }
    bool allow(std::uint64_t& left_out, std::chrono::steady_clock::time_point now);

  private:
    unsigned per_window_;
    std::chrono::steady_clock::duration window_;
    std::mutex mutex_;
    std::chrono::steady_clock::time_point since_{};
    unsigned written_ = 0;
    std::uint64_t left_out_ = 0;
};

/// "" or " (N more like it left out)".
std::string left_out_note(std::uint64_t left_out);

}  // namespace cb::daemon
