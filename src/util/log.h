// The library's one logging facility: spdlog to stderr, level from the environment variable
// ICKPT_LOG = debug | info | warn | error | off (default warn), read once on first use.
//
// Use the macros with fmt-style format strings:
//   ICKPT_LOG_WARN("pack {}: retrying after {}", key, status.ToString());
// Errors that a caller may hit on every call (a fallback taken, a retried I/O error) should be
// logged with ICKPT_LOG_ONCE so that a hot loop does not flood stderr: "logged once, not per call".
//
// Thread safety: every function here may be called from any thread.
#pragma once

#include <string_view>
#include <utility>

#include "fmt/format.h"

namespace ickpt {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

// True if a message at `level` would be written; lets callers skip formatting expensive arguments.
bool LogEnabled(LogLevel level);

// Writes `message` at `level` (if enabled), prefixed by "ickpt".
void LogMessage(LogLevel level, std::string_view message);

// Writes `message` at `level` the first time it is called with `key` in this process; later calls
// with the same key do nothing (even if the message differs). Returns true if it logged.
bool LogOnce(std::string_view key, LogLevel level, std::string_view message);

// Overrides the level from ICKPT_LOG (tests, command-line flags).
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();

// Parses "debug", "info", "warn"/"warning", "error", "off" (case-insensitive); `fallback`
// otherwise.
LogLevel ParseLogLevel(std::string_view name, LogLevel fallback);

namespace log_internal {
template <typename... Args>
void Log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (!LogEnabled(level)) return;
  LogMessage(level, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void LogOnceFormatted(std::string_view key, LogLevel level, fmt::format_string<Args...> format,
                      Args&&... args) {
  LogOnce(key, level, fmt::format(format, std::forward<Args>(args)...));
}
}  // namespace log_internal

}  // namespace ickpt

#define ICKPT_LOG_DEBUG(...) ::ickpt::log_internal::Log(::ickpt::LogLevel::kDebug, __VA_ARGS__)
#define ICKPT_LOG_INFO(...) ::ickpt::log_internal::Log(::ickpt::LogLevel::kInfo, __VA_ARGS__)
#define ICKPT_LOG_WARN(...) ::ickpt::log_internal::Log(::ickpt::LogLevel::kWarn, __VA_ARGS__)
#define ICKPT_LOG_ERROR(...) ::ickpt::log_internal::Log(::ickpt::LogLevel::kError, __VA_ARGS__)
// ICKPT_LOG_ONCE(key, level, fmt, args...): logs the formatted message only the first time `key`
// is seen in this process. `level` is a LogLevel, e.g. ::ickpt::LogLevel::kWarn.
#define ICKPT_LOG_ONCE(key, level, ...) \
  ::ickpt::log_internal::LogOnceFormatted(key, level, __VA_ARGS__)
