#include "src/util/log.h"

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"
#include "src/util/mutex.h"
#include "src/util/str.h"

namespace ickpt {
namespace {

spdlog::level::level_enum ToSpdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
    case LogLevel::kOff:
      break;
  }
  return spdlog::level::off;
}

struct LogState {
  LogState() {
    const char* env = std::getenv("ICKPT_LOG");
    level.store(
        static_cast<int>(env == nullptr ? LogLevel::kWarn : ParseLogLevel(env, LogLevel::kWarn)));
    // A private logger (not registered in spdlog's global registry) so that an application's own
    // spdlog configuration neither sees nor changes ours.
    logger = std::make_shared<spdlog::logger>("ickpt",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e [%l] ickpt: %v");
    // The level check happens in LogEnabled; the logger writes whatever reaches it.
    logger->set_level(spdlog::level::trace);
  }
  std::atomic<int> level;
  std::shared_ptr<spdlog::logger> logger;
  Mutex once_mu;
  absl::flat_hash_set<std::string> once_keys ABSL_GUARDED_BY(once_mu);
};

LogState& State() {
  // Never destroyed, so logging from static destructors of other objects stays safe.
  static LogState* const state = new LogState();
  return *state;
}

}  // namespace

LogLevel ParseLogLevel(std::string_view name, LogLevel fallback) {
  const std::string lower = AsciiLower(name);
  if (lower == "debug") return LogLevel::kDebug;
  if (lower == "info") return LogLevel::kInfo;
  if (lower == "warn" || lower == "warning") return LogLevel::kWarn;
  if (lower == "error") return LogLevel::kError;
  if (lower == "off" || lower == "none") return LogLevel::kOff;
  return fallback;
}

bool LogEnabled(LogLevel level) {
  return level != LogLevel::kOff &&
         static_cast<int>(level) >= State().level.load(std::memory_order_relaxed);
}

void SetLogLevel(LogLevel level) { State().level.store(static_cast<int>(level)); }

LogLevel GetLogLevel() { return static_cast<LogLevel>(State().level.load()); }

void LogMessage(LogLevel level, std::string_view message) {
  if (!LogEnabled(level)) return;
  State().logger->log(ToSpdlog(level), "{}", message);
}

bool LogOnce(std::string_view key, LogLevel level, std::string_view message) {
  LogState& state = State();
  {
    MutexLock lock(&state.once_mu);
    if (!state.once_keys.emplace(key).second) return false;
  }
  LogMessage(level, message);
  return true;
}

}  // namespace ickpt
